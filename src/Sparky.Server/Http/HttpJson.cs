using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Sparky.Server.Http;

/// <summary>JSON answers. Every body is a <see cref="JsonNode"/> tree, written through metadata generated at
/// build time: the native (AOT) build has no reflection-based serializer to fall back on.</summary>
internal static class HttpJson
{
    public static IResult Of(JsonNode? body, int? statusCode = null) =>
        Results.Json(body, HttpJsonContext.Default.JsonNode, statusCode: statusCode);
}

/// <summary>The node types that answers and problem-detail extensions hold; also put first in the HTTP JSON
/// options, so whatever ASP.NET Core serializes on its own (problem details) finds them.</summary>
[JsonSerializable(typeof(JsonNode))]
[JsonSerializable(typeof(JsonObject))]
[JsonSerializable(typeof(JsonArray))]
[JsonSerializable(typeof(JsonValue))]
internal sealed partial class HttpJsonContext : JsonSerializerContext;

using Sparky.Core.Scheduling;
using System.Text.Json;
using System.Text.Json.Serialization;
using Sparky.Core.Tasks;

namespace Sparky.Store.Sqlite;

/// <summary>A task as stored, with its attempts.</summary>
public sealed record TaskRecord(
    long Seq,
    TaskId Id,
    string Class,
    string? Name,
    TaskState State,
    string? Reason,
    TaskSpec Spec,
    string EnvelopeJson,
    int Attempts,
    long SubmittedAt,
    long? StartedAt,
    long? FinishedAt,
    int? ExitCode,
    int? Signal,
    string? ResultJson,
    IReadOnlyList<AttemptRecord> AttemptList,
    string? ResultError = null,
    string? ArtifactsJson = null,
    string? ProgressJson = null);

/// <summary>A page of the task list, and the cursor the next page starts from (null: there is none). A page may hold
/// fewer tasks than asked and still have a next one, where a search stopped walking for time (SearchWalk).</summary>
public sealed record TaskPage(IReadOnlyList<TaskRecord> Tasks, long? NextCursor);

/// <summary>What a report shows of a task: <see cref="SqliteStore.Briefs"/> reads many at once.</summary>
public sealed record TaskBrief(TaskState State, string? Reason, int Attempts, long? StartedAt, long? FinishedAt, int? ExitCode, string? ProgressJson = null);

/// <summary>One attempt: a process, or a Slurm job, that ran the task once.</summary>
public sealed record AttemptRecord(
    int N,
    long StartedAt,
    long? EndedAt,
    int? ExitCode,
    int? Signal,
    int? Pid,
    long? PidStart,
    string? Host,
    AttemptOutcome? Outcome,
    string? Reason,
    string? ExitFile,
    string? SlurmJobId = null,
    long? SlurmStartedAt = null,
    long? SlurmEndedAt = null,
    long? CpuMs = null,
    long? MemPeakBytes = null);

/// <summary>What the engine reads of each unfinished task after a restart: a value, since a restart may read a million.</summary>
public readonly record struct ActiveTask(long Seq, TaskId Id, string Class, TaskState State, IReadOnlyList<TaskId> After, int Attempts, int Retries, AttemptRecord? LastAttempt,
    ResourceRequest Asks);

/// <summary>A task to insert: the fields the engine has decided.</summary>
public sealed record NewTask(TaskId Id, TaskSpec Spec, string EnvelopeJson, long SubmittedAt);

public static class SpecJson
{
    public static string Serialize(TaskSpec spec) => JsonSerializer.Serialize(spec, SpecJsonContext.Default.TaskSpec);
    public static TaskSpec Deserialize(string json) => JsonSerializer.Deserialize(json, SpecJsonContext.Default.TaskSpec)!;
}

/// <summary>The stored spec's JSON contract, generated at build time: no reflection, so the native (AOT) build
/// reads and writes it exactly as the JIT build does.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull, Converters = [typeof(TaskIdJson)])]
[JsonSerializable(typeof(TaskSpec))]
internal sealed partial class SpecJsonContext : JsonSerializerContext;

/// <summary>A task id in the stored spec (<c>after</c>): its text, as it was stored when ids were strings there.</summary>
internal sealed class TaskIdJson : JsonConverter<TaskId>
{
    public override TaskId Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        TaskId.TryParse(reader.GetString(), out var id) ? id : throw new JsonException($"not a task id (must match {TaskId.Pattern})");

    public override void Write(Utf8JsonWriter writer, TaskId value, JsonSerializerOptions options) => writer.WriteStringValue(value.Value);
}

/// <summary>A plan as stored: its file (text, where it was read, the folder relative paths start from) and the
/// plan engine's state as JSON. <see cref="Status"/> is <c>running</c>, <c>succeeded</c> or <c>stopped</c>.</summary>
public sealed record PlanRow(string Name, string? Path, string? BaseDir, string Text, string Status, string StateJson, long UpdatedAt);

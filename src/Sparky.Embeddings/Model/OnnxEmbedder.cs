using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Sparky.Embeddings.Model;

/// <summary>
/// The model, run by ONNX Runtime: a padded batch of token ids in, one pooled (and normalised) vector per input out.
/// Thread-safe: the batcher's workers call it at once (each call on its own <see cref="Threads"/> threads).
/// </summary>
public sealed class OnnxEmbedder : IDisposable
{
    private readonly InferenceSession _session;
    private readonly string _outputName;
    private readonly bool _pooledOutput, _tokenTypes, _int32Ids;
    private readonly ModelInfo _model;

    public int Dimensions { get; }
    /// <summary>Threads one call uses (ONNX Runtime's intra-op threads).</summary>
    public int Threads { get; }
    /// <summary>Where it runs: <c>cpu</c> or <c>cuda</c>.</summary>
    public string Device { get; }
    /// <summary>Why it runs where it runs, one line (logged once at start).</summary>
    public string DeviceReason { get; }

    /// <param name="device">auto (CUDA where an NVIDIA GPU and ONNX Runtime's CUDA provider are both here), cpu or cuda.</param>
    /// <param name="threads">Threads one call may use; 0: one per core.</param>
    /// <param name="optimization">ONNX Runtime's graph optimisation level (bench/embed --ort compares them).</param>
    public OnnxEmbedder(ModelInfo model, string device = "auto", int threads = 0, GraphOptimizationLevel optimization = GraphOptimizationLevel.ORT_ENABLE_ALL)
    {
        _model = model;
        using var options = new SessionOptions { GraphOptimizationLevel = optimization, ExecutionMode = ExecutionMode.ORT_SEQUENTIAL };
        options.IntraOpNumThreads = Threads = threads > 0 ? threads : Environment.ProcessorCount;
        // Its threads sleep between calls instead of spinning: the cores are shared with the HTTP server and the
        // tokenisation of the next requests, which spinning starved on a small machine.
        options.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
        (Device, DeviceReason) = PickDevice(options, device);
        _session = new InferenceSession(model.OnnxPath, options);
        var inputs = _session.InputMetadata;
        if (!inputs.ContainsKey("input_ids") || !inputs.ContainsKey("attention_mask"))
            throw new InvalidOperationException($"{model.OnnxPath}: expected inputs input_ids and attention_mask, found {string.Join(", ", inputs.Keys)}");
        _tokenTypes = inputs.ContainsKey("token_type_ids");
        _int32Ids = inputs["input_ids"].ElementDataType == TensorElementType.Int32;
        // A sentence-transformers export may carry the pooled vector itself (sentence_embedding); a transformers export
        // has the token vectors (last_hidden_state, or token_embeddings), pooled here.
        var outputs = _session.OutputMetadata;
        _outputName = new[] { "last_hidden_state", "token_embeddings", "sentence_embedding" }.FirstOrDefault(outputs.ContainsKey) ?? outputs.Keys.First();
        var shape = outputs[_outputName].Dimensions;
        _pooledOutput = shape.Length == 2;
        Dimensions = shape[^1] > 0 ? shape[^1] : throw new InvalidOperationException($"{model.OnnxPath}: output {_outputName} has no fixed last dimension");
    }

    /// <summary>The vectors of a batch, in its order. Each element holds one input's token ids ([CLS] … [SEP]).</summary>
    public float[][] Embed(IReadOnlyList<int[]> batch)
    {
        int n = batch.Count, seq = 0;
        foreach (var ids in batch) seq = Math.Max(seq, ids.Length);
        long[] shape = [n, seq];
        // Row-major [n, seq]; padding is id 0 ([PAD]) with mask 0.
        var ids64 = new long[n * seq];
        var mask = new long[n * seq];
        for (int r = 0; r < n; r++)
            for (int c = 0; c < batch[r].Length; c++) { ids64[r * seq + c] = batch[r][c]; mask[r * seq + c] = 1; }
        var values = new List<OrtValue>();
        try
        {
            values.Add(_int32Ids ? OrtValue.CreateTensorValueFromMemory(Array.ConvertAll(ids64, x => (int)x), shape) : OrtValue.CreateTensorValueFromMemory(ids64, shape));
            values.Add(_int32Ids ? OrtValue.CreateTensorValueFromMemory(Array.ConvertAll(mask, x => (int)x), shape) : OrtValue.CreateTensorValueFromMemory(mask, shape));
            var names = new List<string> { "input_ids", "attention_mask" };
            if (_tokenTypes)
            {
                values.Add(_int32Ids ? OrtValue.CreateTensorValueFromMemory(new int[n * seq], shape) : OrtValue.CreateTensorValueFromMemory(new long[n * seq], shape));
                names.Add("token_type_ids");
            }
            using var run = new RunOptions();
            using var results = _session.Run(run, names, values, [_outputName]);
            var output = results[0].GetTensorDataAsSpan<float>();
            var vectors = new float[n][];
            for (int r = 0; r < n; r++)
            {
                var v = _pooledOutput
                    ? output.Slice(r * Dimensions, Dimensions).ToArray()
                    : Vectors.Pool(output.Slice(r * seq * Dimensions, seq * Dimensions), seq, Dimensions, batch[r].Length, _model.Pooling);
                vectors[r] = _model.Normalize ? Vectors.Normalize(v) : v;
            }
            return vectors;
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    /// <summary>CUDA where asked for or where auto finds an NVIDIA GPU and a CUDA-enabled ONNX Runtime; else the CPU.</summary>
    private static (string Device, string Reason) PickDevice(SessionOptions options, string device)
    {
        if (device == "cpu") return ("cpu", "CPU (device = cpu)");
        bool gpu = File.Exists("/proc/driver/nvidia/version") || File.Exists("/dev/nvidia0");
        if (device == "auto" && !gpu) return ("cpu", "CPU: no NVIDIA GPU found");
        if (!OrtEnv.Instance().GetAvailableProviders().Contains("CUDAExecutionProvider"))
        {
            var why = "CPU: this ONNX Runtime has no CUDA provider (the CPU package Microsoft.ML.OnnxRuntime; put the libraries of " +
                "Microsoft.ML.OnnxRuntime.Gpu.Linux beside sparky for CUDA)";
            return device == "cuda" ? throw new InvalidOperationException(why) : ("cpu", why);
        }
        try
        {
            options.AppendExecutionProvider_CUDA(0);
            return ("cuda", "CUDA (GPU 0)");
        }
        catch (OnnxRuntimeException e)
        {
            var why = $"CPU: CUDA did not start ({e.Message.Split('\n')[0]})";
            return device == "cuda" ? throw new InvalidOperationException(why) : ("cpu", why);
        }
    }

    public void Dispose() => _session.Dispose();
}

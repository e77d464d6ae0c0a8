using Microsoft.Extensions.Logging;
using Sparky.Core.Config;

namespace Sparky.Core.Tests.Config;

/// <summary><c>log_level</c>: Microsoft.Extensions.Logging's levels by name (any case), the replaced system's shorter
/// spellings, information when unset, and anything else refused with every allowed value listed.</summary>
public sealed class LogLevelSettingTests
{
    private static readonly SettingContext Ctx = new(8, "/data");
    private static Dictionary<string, string> D(params (string, string)[] kv) => kv.ToDictionary(x => x.Item1, x => x.Item2);

    [Theory]
    [InlineData("trace", LogLevel.Trace)]
    [InlineData("debug", LogLevel.Debug)]
    [InlineData("information", LogLevel.Information)]
    [InlineData("warning", LogLevel.Warning)]
    [InlineData("error", LogLevel.Error)]
    [InlineData("critical", LogLevel.Critical)]
    [InlineData("none", LogLevel.None)]
    [InlineData("Information", LogLevel.Information)]
    [InlineData(" WARNING ", LogLevel.Warning)]
    [InlineData("info", LogLevel.Information)]
    [InlineData("warn", LogLevel.Warning)]
    [InlineData("fatal", LogLevel.Critical)]
    public void Each_level_is_read_by_its_name(string value, LogLevel level)
    {
        var (c, errors) = SparkyConfig.Resolve(D(("log_level", value)), D(), D(), "f", Ctx);
        Assert.Empty(errors);
        Assert.Equal(level, c!.LogLevel);
    }

    [Fact]
    public void Unset_it_is_information_from_the_environment_or_the_file_it_is_read_as_any_setting()
    {
        var (c, _) = SparkyConfig.Resolve(D(), D(), D(), "f", Ctx);
        Assert.Equal((LogLevel.Information, SettingSource.Default), (c!.LogLevel, c.Settings["log_level"].Source));
        var (env, _) = SparkyConfig.Resolve(D(), D(("SPARKY_LOG_LEVEL", "error")), D(("log_level", "debug")), "sparky.toml", Ctx);
        Assert.Equal((LogLevel.Error, "SPARKY_LOG_LEVEL"), (env!.LogLevel, env.Settings["log_level"].Origin));
        var (file, _) = SparkyConfig.Resolve(D(), D(), D(("log_level", "debug")), "sparky.toml", Ctx);
        Assert.Equal((LogLevel.Debug, "sparky.toml"), (file!.LogLevel, file.Settings["log_level"].Origin));
    }

    [Theory]
    [InlineData("loud")]
    [InlineData("")]
    [InlineData("warnings")]
    [InlineData("3")]
    public void Another_value_is_refused_with_the_allowed_ones_listed(string value)
    {
        var (c, errors) = SparkyConfig.Resolve(D(("log_level", value)), D(), D(), "f", Ctx);
        Assert.Null(c);
        var e = Assert.Single(errors);
        Assert.Equal($"log_level = '{value}' from --log-level: allowed: trace, debug, information, warning, error, critical, none (any case; also info, warn, fatal)", e);
    }
}

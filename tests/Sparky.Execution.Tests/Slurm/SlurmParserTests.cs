using Sparky.Execution.Slurm;

namespace Sparky.Execution.Tests.Slurm;

public sealed class SlurmParserTests
{
    // A fixed zone two hours east of UTC, so a test cannot pass by reading times as UTC or as this machine's.
    private static readonly TimeZoneInfo Plus2 = TimeZoneInfo.CreateCustomTimeZone("test+2", TimeSpan.FromHours(2), "test+2", "test+2");

    private static DateTimeOffset At(int day, int h, int m, int s) => new(2026, 11, day, h, m, s, TimeSpan.FromHours(2));

    // ---------------- squeue ----------------

    // squeue --noheader --all --me --states=all --array --format=%i|%T|%N|%S|%e|%r|%k
    private const string Squeue = """
        4242|RUNNING|node017|2026-11-25T02:41:12|2026-11-25T03:41:12|None|sparky:01jb3kz8m2q
        4243|PENDING||N/A|N/A|Dependency|sparky:01jb3kz8m2r

        4250_3|RUNNING|gpu[01-02]|2026-11-25T02:40:00|2026-11-26T02:40:00|None|sparky:arr.3   
        4250_[5-9%2]|PENDING||2026-11-25T04:00:00|N/A|JobArrayTaskLimit|sparky:arr
        4260|COMPLETED|node003|2026-11-25T01:00:00|2026-11-25T01:05:30|None|sparky:done1
        4261|FAILED|node004|2026-11-25T01:00:00|2026-11-25T01:00:02|NonZeroExitCode|(null)
        4262|CANCELLED|node005|2026-11-25T01:00:00|2026-11-25T01:10:00|None|sparky:c1
        4263|BRAND_NEW_STATE|node006|Unknown|Unknown|None|sparky:new1
        squeue: error: slurm_receive_msg: Socket timed out on send/recv operation
        4264|COMPLETING|node007|2026-11-25T01:00:00|2026-11-25T01:10:00|None|sparky:x|with|pipes
        4265_[1,3,7-9]|PENDING||N/A|N/A|BeginTime|
        not-a-job|RUNNING|n|N/A|N/A|None|
        4266||n|N/A|N/A|None|sparky:nostate

        """;

    [Fact]
    public void Squeue_reads_every_job_line()
    {
        var jobs = SlurmQueries.ParseSqueue(Squeue.Replace("\n", "\r\n"), Plus2);
        Assert.Equal(new[] { "4242", "4243", "4250_3", "4250_[5-9%2]", "4260", "4261", "4262", "4263", "4264", "4265_[1,3,7-9]" },
            jobs.Select(j => j.JobId));

        var running = jobs[0];
        Assert.Equal(new SlurmJob("4242", "RUNNING", "node017", "sparky:01jb3kz8m2q", null, null,
            At(25, 2, 41, 12), At(25, 3, 41, 12), null), running);
        Assert.Equal("01jb3kz8m2q", running.TaskId);
        Assert.Equal(SlurmPhase.Running, running.Phase);

        var pending = jobs[1];
        Assert.Null(pending.Node);
        Assert.Null(pending.Start);
        Assert.Equal("Dependency", pending.Reason);
        Assert.Equal(SlurmPhase.Pending, pending.Phase);

        Assert.Equal("arr.3", jobs[2].TaskId); // trailing spaces dropped
        Assert.Equal(("4250", "3"), (jobs[2].BaseJobId, jobs[2].ArrayTask));
        Assert.Equal(("4250", "5-9%2"), (jobs[3].BaseJobId, jobs[3].ArrayTask));
        Assert.Equal("1,3,7-9", jobs[9].ArrayTask);
        Assert.Null(jobs[9].Comment);

        // squeue has no exit code, so COMPLETED is not yet a success.
        Assert.Equal(SlurmPhase.CompletedUnverified, jobs[4].Phase);
        Assert.Null(jobs[5].Comment);
        Assert.Null(jobs[5].TaskId);
        Assert.Equal(SlurmPhase.Failed, jobs[5].Phase);
        Assert.Equal(SlurmPhase.Cancelled, jobs[6].Phase);
        Assert.Equal(SlurmPhase.Unknown, jobs[7].Phase);
        Assert.Equal("sparky:x|with|pipes", jobs[8].Comment); // the comment is last and keeps its '|'
    }

    [Fact]
    public void Squeue_skips_bad_lines_and_says_why()
    {
        var skipped = SlurmQueries.ParseSqueue(Squeue, Plus2).Skipped;
        Assert.Equal(3, skipped.Count);
        Assert.StartsWith("squeue: error", skipped[0].Line);
        Assert.Contains("expected 7 '|'-separated fields", skipped[0].Reason);
        Assert.Equal(10, skipped[0].LineNumber);
        Assert.Contains("not a Slurm job id", skipped[1].Reason);
        Assert.Equal("no job state", skipped[2].Reason);
    }

    [Theory]
    [InlineData("")]
    [InlineData("\n\n   \n")]
    public void Empty_output_is_no_jobs(string text)
    {
        var jobs = SlurmQueries.ParseSqueue(text);
        Assert.Empty(jobs);
        Assert.Empty(jobs.Skipped);
    }

    [Fact]
    public void Squeue_args_carry_the_format_the_parser_reads()
    {
        Assert.Contains("--format=" + SlurmQueries.SqueueFormat, SlurmQueries.SqueueArgs);
        Assert.Contains("--states=all", SlurmQueries.SqueueArgs);
        Assert.Contains("--noheader", SlurmQueries.SqueueArgs);
        Assert.Equal(7, SlurmQueries.SqueueFormat.Split('|').Length);
        Assert.EndsWith("%k", SlurmQueries.SqueueFormat); // the free-text comment is last
        Assert.Equal("standard", SlurmQueries.Environment["SLURM_TIME_FORMAT"]);
    }

    // ---------------- sacct ----------------

    // sacct --noheader --parsable2 --allocations --format=JobID,State,ExitCode,NodeList,Start,End,Comment --jobs=...
    private const string Sacct = """
        4242|RUNNING|0:0|node017|2026-11-25T02:41:12|Unknown|sparky:01jb3kz8m2q
        4243|PENDING|0:0|None assigned|Unknown|Unknown|sparky:01jb3kz8m2r
        4244|CANCELLED by 1000|0:15|node002|2026-11-25T01:00:00|2026-11-25T01:30:00|sparky:c1
        4245|COMPLETED|0:0|node003|2026-11-25T01:00:00|2026-11-25T01:05:30|sparky:ok1
        4246|FAILED|2:0|node004|2026-11-25T01:00:00|2026-11-25T01:00:03|sparky:f1
        4247|OUT_OF_MEMORY|0:125|node005|2026-11-25T01:00:00|2026-11-25T01:20:00|sparky:oom1  
        4248|TIMEOUT|0:0|node006|2026-11-25T01:00:00|2026-11-25T02:00:00|sparky:to1
        4249|NODE_FAIL|1:0|node007|2026-11-25T01:00:00|2026-11-25T01:10:00|
        4250_3|COMPLETED|0:0|gpu01|2026-11-25T02:40:00|2026-11-25T02:50:00|sparky:arr.3
        4250_[5-9]|PENDING|0:0|None assigned|Unknown|Unknown|sparky:arr
        4251|COMPLETED|0:9|node008|2026-11-25T01:00:00|2026-11-25T01:00:09|sparky:sig
        4252|WEIRD|0:0|node009|None|None|sparky:w
        4249.batch|COMPLETED|0:0|node007|2026-11-25T01:00:00|2026-11-25T01:10:00|
        4253|COMPLETED|0:0

        """;

    [Fact]
    public void Sacct_reads_states_exit_codes_and_times()
    {
        var jobs = SlurmQueries.ParseSacct(Sacct, Plus2);
        Assert.Equal(12, jobs.Count);
        var byId = jobs.ToDictionary(j => j.JobId);

        Assert.Equal(SlurmPhase.Running, byId["4242"].Phase);
        Assert.Null(byId["4242"].End);
        Assert.Null(byId["4243"].Node);
        Assert.Equal(("CANCELLED by 1000", SlurmPhase.Cancelled, 0, 15), (byId["4244"].State, byId["4244"].Phase, byId["4244"].ExitCode, byId["4244"].Signal));
        Assert.Equal(new SlurmJob("4245", "COMPLETED", "node003", "sparky:ok1", 0, 0, At(25, 1, 0, 0), At(25, 1, 5, 30), null), byId["4245"]);
        Assert.Equal(SlurmPhase.Succeeded, byId["4245"].Phase);
        Assert.Equal((SlurmPhase.Failed, 2), (byId["4246"].Phase, byId["4246"].ExitCode));
        Assert.Equal("oom1", byId["4247"].TaskId);
        Assert.Equal(SlurmPhase.OutOfMemory, byId["4247"].Phase);
        Assert.Equal(SlurmPhase.TimedOut, byId["4248"].Phase);
        Assert.Equal(SlurmPhase.NodeFail, byId["4249"].Phase);
        Assert.Null(byId["4249"].Comment);
        Assert.Equal(SlurmPhase.Succeeded, byId["4250_3"].Phase);
        Assert.Equal("5-9", byId["4250_[5-9]"].ArrayTask);
        Assert.Equal(SlurmPhase.Failed, byId["4251"].Phase); // COMPLETED but killed by a signal: not a success
        Assert.Equal(SlurmPhase.Unknown, byId["4252"].Phase);

        Assert.Equal(2, jobs.Skipped.Count);
        Assert.StartsWith("4249.batch", jobs.Skipped[0].Line);
        Assert.Contains("expected 7", jobs.Skipped[1].Reason);
    }

    [Fact]
    public void Sacct_args_name_the_jobs_and_refuse_bad_ids()
    {
        Assert.Equal(new[] { "--noheader", "--parsable2", "--allocations", "--format=" + SlurmQueries.SacctFields, "--jobs=1,2_3" },
            SlurmQueries.SacctArgs(["1", "2_3"]));
        Assert.Throws<ArgumentException>(() => SlurmQueries.SacctArgs([]));
        Assert.Throws<ArgumentException>(() => SlurmQueries.SacctArgs(["1,2"]));
        Assert.Throws<ArgumentException>(() => SlurmQueries.SacctArgs(["-1"]));
        Assert.Throws<ArgumentException>(() => SlurmQueries.ScontrolArgs("1 --all"));
        Assert.Equal(new[] { "--oneliner", "show", "job", "77" }, SlurmQueries.ScontrolArgs("77"));
        Assert.Equal(new[] { "--oneliner", "show", "job" }, SlurmQueries.ScontrolArgs());
        Assert.Equal(new[] { "--parsable", "/x/job.sh" }, SlurmQueries.SbatchArgs("/x/job.sh"));
    }

    // ---------------- scontrol ----------------

    private const string ScontrolRunning =
        "JobId=4242 JobName=01jb3kz8m2q UserId=alice(1000) GroupId=alice(1000) MCS_label=N/A Priority=4294901757 Nice=0 " +
        "Account=proj QOS=normal JobState=RUNNING Reason=None Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 " +
        "ExitCode=0:0 RunTime=00:05:13 TimeLimit=01:00:00 TimeMin=N/A SubmitTime=2026-11-25T02:40:58 " +
        "EligibleTime=2026-11-25T02:40:58 AccrueTime=2026-11-25T02:40:58 StartTime=2026-11-25T02:41:12 " +
        "EndTime=2026-11-25T03:41:12 Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-11-25T02:41:12 " +
        "Scheduler=Main Partition=gpu AllocNode:Sid=login1:12345 ReqNodeList=(null) ExcNodeList=(null) NodeList=node017 " +
        "BatchHost=node017 NumNodes=1 NumCPUs=4 NumTasks=1 CPUs/Task=4 ReqB:S:C:T=0:0:*:* " +
        "TRES=cpu=4,mem=8000M,node=1,billing=4,gres/gpu=1 Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=* " +
        "MinCPUsNode=4 MinMemoryNode=8000M MinTmpDiskNode=0 Features=(null) DelayBoot=00:00:00 OverSubscribe=OK " +
        "Contiguous=0 Licenses=(null) Network=(null) Command=/home/alice/.sparky/slurm/01jb3kz8m2q.sh " +
        "WorkDir=/home/alice/my project Comment=sparky:01jb3kz8m2q StdErr=/home/alice/.sparky/logs/01jb3kz8m2q.err " +
        "StdIn=/dev/null StdOut=/home/alice/.sparky/logs/01jb3kz8m2q.out Power= TresPerNode=gres:gpu:1";

    private const string ScontrolFailedWithTrickyComment =
        "JobId=4246 JobName=my job UserId=alice(1000) GroupId=alice(1000) MCS_label=N/A Priority=1 Nice=0 Account=proj " +
        "QOS=normal JobState=FAILED Reason=NonZeroExitCode Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 " +
        "ExitCode=2:0 RunTime=00:00:03 TimeLimit=UNLIMITED TimeMin=N/A SubmitTime=2026-11-25T00:59:58 " +
        "EligibleTime=2026-11-25T00:59:58 StartTime=2026-11-25T01:00:00 EndTime=2026-11-25T01:00:03 Deadline=N/A " +
        "Partition=cpu NodeList=node004 BatchHost=node004 NumNodes=1 NumCPUs=1 " +
        "Command=/bin/run a b=c WorkDir=/tmp/x y Comment=note: retry x=1 JobState=COMPLETED ExitCode=0:0 " +
        "StdErr=/tmp/e StdIn=/dev/null StdOut=/tmp/o Power=";

    private const string ScontrolArray =
        "JobId=5001 ArrayJobId=5000 ArrayTaskId=1 JobName=arr UserId=alice(1000) GroupId=alice(1000) JobState=COMPLETED " +
        "Reason=None ExitCode=0:0 StartTime=2026-11-25T01:00:00 EndTime=2026-11-25T01:00:10 NodeList=n1 " +
        "Comment=sparky:arr.1 StdOut=/logs/5000_1.out\n" +
        "JobId=5000 ArrayJobId=5000 ArrayTaskId=2-9 ArrayTaskThrottle=2 JobName=arr UserId=alice(1000) JobState=PENDING " +
        "Reason=JobArrayTaskLimit ExitCode=0:0 StartTime=Unknown EndTime=Unknown NodeList=(null) Comment=sparky:arr";

    // Slurm's default (not --oneliner) layout, as in the scontrol man page: continuation lines are indented.
    private const string ScontrolMultiLine = """
        JobId=71701 JobName=hostname
           UserId=da(1000) GroupId=da(1000)
           Priority=66264 Account=none QOS=normal WCKey=*123
           JobState=TIMEOUT Reason=TimeLimit Dependency=(null)
           TimeLimit=UNLIMITED Requeue=1 Restarts=0 BatchFlag=0 ExitCode=0:15
           SubmitTime=2026-01-05T10:58:40 EligibleTime=2026-01-05T10:58:40
           StartTime=2026-01-05T10:58:40 EndTime=2026-01-05T11:58:40
           Partition=debug AllocNode:Sid=snowflake:4702
           NodeList=snowflake0
           Comment=sparky:multi.1
           WorkDir=/home/da
           StdOut=/home/da/slurm-71701.out

        """;

    [Fact]
    public void Scontrol_reads_a_realistic_oneliner()
    {
        var job = Assert.Single(SlurmQueries.ParseScontrol(ScontrolRunning + "\n", Plus2));
        Assert.Equal(new SlurmJob("4242", "RUNNING", "node017", "sparky:01jb3kz8m2q", 0, 0, At(25, 2, 41, 12), At(25, 3, 41, 12), null)
        {
            WorkDir = "/home/alice/my project",
            StdOut = "/home/alice/.sparky/logs/01jb3kz8m2q.out",
        }, job);
    }

    [Fact]
    public void Scontrol_free_text_cannot_pose_as_status_keys()
    {
        var job = Assert.Single(SlurmQueries.ParseScontrol(ScontrolFailedWithTrickyComment, Plus2));
        Assert.Equal("FAILED", job.State);
        Assert.Equal((2, 0), (job.ExitCode, job.Signal));
        Assert.Equal(SlurmPhase.Failed, job.Phase);
        Assert.Equal("note: retry x=1", job.Comment);
        Assert.Equal("/tmp/x y", job.WorkDir);
        Assert.Equal("/tmp/o", job.StdOut);
        Assert.Equal("NonZeroExitCode", job.Reason);
    }

    [Fact]
    public void Scontrol_fields_split_on_known_and_generic_keys()
    {
        var f = SlurmQueries.ScontrolFields("JobId=1 NewKey22=v JobName=a b c TRES=cpu=4,mem=1G Comment=x y=z w StdOut=/o p Power=");
        Assert.Equal("a b c", f["JobName"]);
        Assert.Equal("v", f["NewKey22"]); // an unknown key after a plain field splits
        Assert.Equal("cpu=4,mem=1G", f["TRES"]);
        Assert.Equal("x y=z w", f["Comment"]); // but not inside free text
        Assert.Equal("/o p", f["StdOut"]);
        Assert.Equal("", f["Power"]);
    }

    [Fact]
    public void Scontrol_gives_array_elements_squeue_style_ids()
    {
        var jobs = SlurmQueries.ParseScontrol(ScontrolArray, Plus2);
        Assert.Equal(new[] { "5000_1", "5000_[2-9]" }, jobs.Select(j => j.JobId));
        Assert.Equal(SlurmPhase.Succeeded, jobs[0].Phase);
        Assert.Equal("arr.1", jobs[0].TaskId);
        Assert.Equal(SlurmPhase.Pending, jobs[1].Phase);
        Assert.Null(jobs[1].Node);
        Assert.Null(jobs[1].Start);
        Assert.Equal("JobArrayTaskLimit", jobs[1].Reason);
    }

    [Fact]
    public void Scontrol_reads_the_multi_line_layout()
    {
        var job = Assert.Single(SlurmQueries.ParseScontrol(ScontrolMultiLine, Plus2));
        Assert.Equal(("71701", "TIMEOUT", SlurmPhase.TimedOut, 0, 15), (job.JobId, job.State, job.Phase, job.ExitCode, job.Signal));
        Assert.Equal("multi.1", job.TaskId);
        Assert.Equal("snowflake0", job.Node);
        Assert.Equal(new DateTimeOffset(2026, 1, 5, 11, 58, 40, TimeSpan.FromHours(2)), job.End);
        Assert.Equal("/home/da", job.WorkDir);
    }

    [Fact]
    public void Scontrol_mixed_output_with_garbage()
    {
        var text = string.Join("\n", "", ScontrolRunning + "   ", "   ", "slurm_load_jobs error: Invalid job id specified",
            ScontrolArray, "JobId=abc JobState=RUNNING", "JobId=9 JobName=x", "No jobs in the system", "");
        var jobs = SlurmQueries.ParseScontrol(text, Plus2);
        Assert.Equal(new[] { "4242", "5000_1", "5000_[2-9]" }, jobs.Select(j => j.JobId));
        Assert.Equal(4, jobs.Skipped.Count);
        Assert.Contains("expected a line starting with JobId=", jobs.Skipped[0].Reason);
        Assert.Equal(4, jobs.Skipped[0].LineNumber);
        Assert.Contains("not a Slurm job id", jobs.Skipped[1].Reason);
        Assert.Equal("no job state", jobs.Skipped[2].Reason);
        Assert.Equal("no jobs", jobs.Skipped[3].Reason);
    }

    // ---------------- sbatch ----------------

    [Theory]
    [InlineData("1234\n", "1234", null)]
    [InlineData("1234", "1234", null)]
    [InlineData("  1234  \r\n\n", "1234", null)]
    [InlineData("1234;cluster-a\n", "1234", "cluster-a")]
    public void Sbatch_parsable_output(string text, string id, string? cluster) =>
        Assert.Equal(new SubmittedJob(id, cluster), SlurmQueries.ParseSbatch(text));

    [Theory]
    [InlineData("", "printed no job id")]
    [InlineData("\n \n", "printed no job id")]
    [InlineData("Submitted batch job 1234\n", "'Submitted batch job 1234'")]
    [InlineData("sbatch: error: Batch job submission failed: Invalid account", "not a job id")]
    [InlineData("1234\n1235\n", "'1234\\n1235'")]
    [InlineData("1234;", "not a job id")]
    [InlineData("12a4", "not a job id")]
    [InlineData("-1", "not a job id")]
    public void Sbatch_other_output_is_a_clear_error(string text, string expected) =>
        Assert.Contains(expected, Assert.Throws<FormatException>(() => SlurmQueries.ParseSbatch(text)).Message);

    // ---------------- times and exit codes ----------------

    [Theory]
    [InlineData("Unknown")]
    [InlineData("None")]
    [InlineData("N/A")]
    [InlineData("(null)")]
    [InlineData("")]
    [InlineData(null)]
    [InlineData("Tomorr 02:41")]
    [InlineData("2026-11-25 02:41:12")]
    [InlineData("2026-13-25T02:41:12")]
    public void Times_that_are_not_times_are_null(string? text) => Assert.Null(SlurmQueries.ParseTime(text, Plus2));

    [Fact]
    public void Times_are_read_in_the_given_zone()
    {
        Assert.Equal(At(25, 2, 41, 12), SlurmQueries.ParseTime(" 2026-11-25T02:41:12 ", Plus2));
        var utc = SlurmQueries.ParseTime("2026-11-25T02:41:12", TimeZoneInfo.Utc)!.Value;
        Assert.Equal(TimeSpan.Zero, utc.Offset);
        Assert.Equal(new DateTime(2026, 11, 25, 0, 41, 12), SlurmQueries.ParseTime("2026-11-25T02:41:12", Plus2)!.Value.UtcDateTime);
    }

    [Fact]
    public void Times_follow_daylight_saving_in_a_real_zone()
    {
        // A zone with DST, made here so the test needs no tz database: +1 in winter, +2 from the last Sunday of March.
        var rule = TimeZoneInfo.AdjustmentRule.CreateAdjustmentRule(DateTime.MinValue.Date, DateTime.MaxValue.Date, TimeSpan.FromHours(1),
            TimeZoneInfo.TransitionTime.CreateFloatingDateRule(new DateTime(1, 1, 1, 2, 0, 0), 3, 5, DayOfWeek.Sunday),
            TimeZoneInfo.TransitionTime.CreateFloatingDateRule(new DateTime(1, 1, 1, 3, 0, 0), 10, 5, DayOfWeek.Sunday));
        var cet = TimeZoneInfo.CreateCustomTimeZone("test-cet", TimeSpan.FromHours(1), "test-cet", "test-cet", "test-cest", [rule]);
        Assert.Equal(TimeSpan.FromHours(1), SlurmQueries.ParseTime("2026-01-15T12:00:00", cet)!.Value.Offset);
        Assert.Equal(TimeSpan.FromHours(2), SlurmQueries.ParseTime("2026-07-15T12:00:00", cet)!.Value.Offset);
    }

    [Theory]
    [InlineData("0:0", 0, 0)]
    [InlineData("1:0", 1, 0)]
    [InlineData("0:9", 0, 9)]
    [InlineData("255:0", 255, 0)]
    [InlineData(" 2:15 ", 2, 15)]
    [InlineData("", null, null)]
    [InlineData("1", null, null)]
    [InlineData("a:b", null, null)]
    [InlineData("-1:0", null, null)]
    [InlineData("1:2:3", null, null)]
    public void Exit_codes(string text, int? code, int? signal) => Assert.Equal((code, signal), SlurmQueries.ParseExitCode(text));
}

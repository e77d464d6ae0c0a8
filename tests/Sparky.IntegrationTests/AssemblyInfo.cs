// Integration tests spawn real processes and daemons; on a 2-core machine running them one class
// at a time keeps timings honest and avoids starving the daemons under test.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

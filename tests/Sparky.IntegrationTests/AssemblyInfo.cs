// Integration tests spawn real processes and daemons. Most of their time is spent waiting on those, so test classes
// run in parallel, a few at a time; the ones that load the machine on purpose, time what they measure, or change this
// process's environment run alone afterwards (SerialCollection, SlurmCollection).
[assembly: CollectionBehavior(CollectionBehavior.CollectionPerClass, MaxParallelThreads = 4)]

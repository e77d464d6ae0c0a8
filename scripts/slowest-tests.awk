# The test classes that took longest, from `dotnet test --logger "console;verbosity=normal"` output: the sum of each
# class's tests' durations ("Passed A.B.Class.Test(args) [1 m 2 s]"), the slowest first. test.sh prints it at the end,
# where the next cut of the test command's time starts.
/^[[:space:]]*(Passed|Failed) [^:]/ {
  line = $0
  if (!match(line, /\[[^]]*\][[:space:]]*$/)) next
  d = substr(line, RSTART + 1, RLENGTH - 2)
  ms = 0
  n = split(d, w, " ")
  for (i = 1; i < n; i++) {
    if (w[i + 1] == "ms") ms += w[i]
    else if (w[i + 1] == "s") ms += w[i] * 1000
    else if (w[i + 1] == "m") ms += w[i] * 60000
  }
  name = line
  sub(/^[[:space:]]*(Passed|Failed) /, "", name)
  sub(/\(.*$/, "", name)
  sub(/ \[.*$/, "", name)
  sub(/\.[^.]*$/, "", name)  # the test's own name off: its class is left
  sum[name] += ms
  count[name]++
}
END {
  for (c in sum) printf "%8.1f s %4d  %s\n", sum[c] / 1000, count[c], c | "sort -rn | head -" (top ? top : 15)
}

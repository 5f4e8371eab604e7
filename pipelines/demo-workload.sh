#!/bin/sh
# The demo's workload: appends 1, 2, 3, ... to the file named by $1, ten numbers a second,
# until stopped. Small, so that every step of the demo is easy to follow.
out=$1
n=0
while :; do
  n=$((n + 1))
  echo "$n" >> "$out"
  sleep 0.1
done

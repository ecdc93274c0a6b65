#!/bin/sh
# PreFlight: is this host fit for maintenance at all? Exit 70 to leave it alone this time.
echo "PreFlight on ${RM_HOST} (cluster ${RM_CLUSTER}, run ${RM_RUN_ID}) with payload: $*"
free -m | awk '/^Mem:/ {print "memory available: " $7 " MiB"}'
exit 0

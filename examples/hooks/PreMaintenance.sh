#!/bin/sh
# PreMaintenance: last checks before the host's guests are moved away.
echo "PreMaintenance on ${RM_HOST}: $(virsh -c qemu:///system list --name 2>/dev/null | grep -c .) guest(s) running"
exit 0

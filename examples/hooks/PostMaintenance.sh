#!/bin/sh
# PostMaintenance: is the host healthy again? Fail loudly if libvirt does not answer.
virsh -c qemu:///system version >/dev/null || { echo "libvirt does not answer" >&2; exit 1; }
echo "PostMaintenance on ${RM_HOST}: libvirt answers"

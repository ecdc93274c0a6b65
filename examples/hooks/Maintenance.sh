#!/bin/sh
# Maintenance: the patching itself. A real one runs apt-get upgrade and may reboot the host.
echo "Maintenance on ${RM_HOST}: patching (simulated)"
sleep "${MAINTENANCE_SECONDS:-2}"
echo "Maintenance on ${RM_HOST}: done"

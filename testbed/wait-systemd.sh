# Wait until systemd in a test bed container has booted (sent with the raw module).
for _ in $(seq 120); do
  state=$(systemctl is-system-running 2>/dev/null)
  case "$state" in running|degraded) echo "$state"; exit 0 ;; esac
  sleep 0.5
done
echo "systemd did not finish booting: ${state:-no bus}" >&2
exit 1

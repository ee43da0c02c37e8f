// Package capture builds, installs, removes and validates the transparent
// capture rules of one network namespace (a pod's, or the host's): inbound
// TCP to the app's ports is redirected to the sidecar's mTLS inbound
// listener, outbound TCP from the app to the sidecar's outbound capture
// listener, and the sidecar's own traffic is exempt by the UID it runs as.
//
// The rules are iptables nat rules in two chains of meshward's own
// (MESHWARD_PREROUTING, MESHWARD_OUTPUT) with one jump each from PREROUTING
// and OUTPUT, in the shape linkerd2-proxy-init uses. Render is pure, so the
// rules are golden-file tested without a kernel; Target.Install applies them
// with iptables-nft-restore --noflush in one transaction, replacing only
// meshward's own chains and jumps; Target.Remove takes exactly those out;
// Target.Validate proves, after installing, that capture is really in place
// (the installed rules match the rendered ones and a probe connection from a
// user other than the proxy's lands where the redirect points) and fails
// closed otherwise.
//
// It does not capture UDP or DNS, does not write ip6tables rules (IPv6 is
// not captured yet), does not speak nftables natively, and does not run a
// repair loop; the sidecar's outbound capture listener (which reads the
// original destination) lives in the proxy, not here.
package capture

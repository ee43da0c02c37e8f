// Package dashboard is the control plane's read-only web view of the mesh:
// the service graph (from the traffic counters sidecars push), identities and
// certificates, the who-may-call-whom matrix of the compiled policy, the
// latest denials and audit events, and the scanner's findings for the
// running configuration.
//
// Pages are rendered with html/template from an embedded file system and
// refresh themselves by polling HTML fragments (/fragment/...); the same
// data is served as JSON under /api/. Nothing is fetched from outside the
// control plane and no endpoint changes state: every route is GET, and
// requests whose Host names something other than an IP address, localhost
// or a configured host are refused (DNS rebinding).
//
// It does not collect metrics itself, and it fetches nothing from a
// workload: sidecars push their traffic counters in their Watch reports
// (a reported admin address is only a label), and it samples them at most
// every ScrapeInterval and computes rates from successive samples.
package dashboard

// Package demo is the example shop that `meshward up --demo` runs: four
// small HTTP services (frontend, catalog, orders, payments) built into the
// meshward binary as hidden `meshward demo-app NAME` commands. They are
// ordinary apps: they listen in plaintext on loopback (MESHWARD_LISTEN),
// call other services through their sidecar's upstream listeners
// (MESHWARD_UPSTREAM_<NAME>), learn their own identity from the SPIFFE
// Workload API (SPIFFE_ENDPOINT_SOCKET), and know nothing of TLS.
package demo

// Package control is the control plane: a gRPC server over mutual TLS that
// turns attestation evidence (join tokens, or another attestor's) and CSRs
// into SVIDs for the attestor's verdict (attest → ca → store), renews them,
// streams each workload its view of the mesh (trust bundle, policy,
// endpoints, bans), drives CA rotation from what workloads report, and
// serves the admin API. It owns no crypto of its own: the CA signs, attest
// checks evidence, the store persists.
package control

// Package ca is meshward's certificate authority: a long-lived root signs a
// short-lived intermediate that signs workload X.509-SVIDs. It checks CSRs,
// signs them, rotates the intermediate at half-life, and runs root rotation
// as a staged state machine (prepare → activate → retire) that only advances
// on proof from the fleet. It persists through a small store interface and
// does no network I/O.
package ca

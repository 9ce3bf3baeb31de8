// Package e2e tests the real chorus binary as a user runs it: built once,
// started on free ports, driven over real HTTP, stopped with signals.
package e2e

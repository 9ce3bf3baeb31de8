// Package gateway is Chorus's serving layer: the KServe V1 and Open Inference
// Protocol V2 routes (gin, JSON and binary tensor data), the same V2 over
// gRPC (grpc.go, one inferV2 shared by both), the registry of models by
// name, readiness, and the one place where errors become HTTP statuses and
// gRPC codes. It sees backends only
// through protocol.Predictor and never imports a backend package.
package gateway

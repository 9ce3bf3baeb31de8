// Package oippb is the Open Inference Protocol's gRPC messages and service
// (package "inference", as KServe and Triton define them), generated from
// oip.proto by scripts/protogen.sh. Edit the proto, never the .pb.go files.
// It imports nothing of ours.
package oippb

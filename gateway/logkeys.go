package gateway

// Log keys, in one place so that every line spells them the same way.
const (
	logKeyRequestID = "request_id"
	logKeyTraceID   = "trace_id"
	logKeyError     = "error"
	logKeyModel     = "model"
	logKeyStatus    = "status"
	logKeyMethod    = "method"
	logKeyPath      = "path"
	logKeyDuration  = "duration"
)

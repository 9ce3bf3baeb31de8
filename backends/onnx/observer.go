package onnx

import "time"

// Observer receives what the backend measures, for metrics; the gateway
// provides one per model. nil Options.Observer: nothing is reported.
type Observer interface {
	// ObserveRun reports one graph run: texts, the longest wait in the
	// queue of any of them (0 without batching), and the run itself.
	ObserveRun(rows int, queueWait, run time.Duration)
	// ObserveQueueDepth reports requests waiting, as the batcher sees them.
	ObserveQueueDepth(n int)
}

// OverlapObserver is an Observer that also counts runs that started while
// another run of the model was in progress (Batching.ConcurrentRuns > 1);
// Options.Observer may implement it.
type OverlapObserver interface {
	ObserveOverlappingRun()
}

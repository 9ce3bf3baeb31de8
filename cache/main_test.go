package cache

import (
	"testing"

	"go.uber.org/goleak"
)

// The Redis store's writer and its client's connections must be gone once
// each test has closed the store.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

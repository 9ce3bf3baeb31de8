package pool

import (
	"testing"

	"go.uber.org/goleak"
)

// Every pool's health loop must be gone once its test has closed it.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

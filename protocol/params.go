package protocol

import (
	"fmt"
	"sort"
)

// CheckParameters reports the first value of an OIP "parameters" object
// that is not a scalar. OIP, and KServe's pydantic models that validate it,
// allow a parameter to be a boolean, a number or a string only: a list or
// an object makes a validating client reject the whole answer.
func CheckParameters(where string, p map[string]any) error {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch p[k].(type) {
		case bool, string, int, int32, int64, uint32, uint64, float32, float64:
		default:
			return fmt.Errorf("%s.%s is %T, want a boolean, number or string", where, k, p[k])
		}
	}
	return nil
}

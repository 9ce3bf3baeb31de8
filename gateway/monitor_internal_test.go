package gateway

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/chorusml/chorus/gateway/config"
)

// The monitor forgets exactly as a queue of the last Remember texts would
// (the oldest requests first, whole), across its map rotations, with ids
// reused and requests of several texts.
func TestMonitorRemembersTheLastTexts(t *testing.T) {
	// Asked after every answer, the store indexes each as it comes; asked
	// now and then, it indexes a backlog that spans its generations.
	for _, every := range []int{1, 37} {
		t.Run(fmt.Sprint("every ", every), func(t *testing.T) { checkRemembers(t, every) })
	}
}

func checkRemembers(t *testing.T, every int) {
	const remember = 7
	m := newMonitor(MonitorOptions{Remember: remember})
	r := render{t: 1}
	type req struct {
		id    string
		texts int
	}
	var queue []req // what a queue of the last remember texts holds, oldest first
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 400 {
		q := req{fmt.Sprint("id", rng.IntN(30)), 1 + rng.IntN(3)}
		if rng.IntN(20) == 0 {
			q.texts = remember + 1 // too many to keep
		}
		m.answered("m", r, make([][]float32, q.texts), q.id, "")
		if q.texts <= remember {
			queue = append(queue, q)
		}
		n := 0
		for _, q := range queue {
			n += q.texts
		}
		for n > remember {
			n -= queue[0].texts
			queue = queue[1:]
		}
		if i%every != every-1 {
			continue
		}
		latest := map[string]int{} // id → its latest request's texts
		for _, q := range queue {
			latest[q.id] = q.texts
		}
		for id := range 30 {
			k := fmt.Sprint("id", id)
			a := m.answers.find(answerKey{"m", k})
			want, kept := latest[k]
			switch {
			case kept && (a == nil || len(a.rows) != want):
				t.Fatalf("after request %d: %s should be its last answer (%d texts), got %v", i, k, want, a)
			case !kept && a != nil:
				t.Fatalf("after request %d: %s should be forgotten", i, k)
			}
		}
	}
}

// BenchmarkMonitorAnswered records one-text answers at the default bound,
// with the store full: each one evicts the oldest.
func BenchmarkMonitorAnswered(b *testing.B) {
	m := newMonitor(MonitorOptions{Remember: config.DefaultMonitoringRemember})
	r := render{t: 1}
	rows := [][]float32{{0.25, -1.5}}
	ids := make([]string, 1<<17)
	for i := range ids {
		ids[i] = fmt.Sprintf("%08x-4f1c-4b7e-9a2d-%012x", i, i)
	}
	for i := range ids {
		m.answered("m", r, rows, ids[i], "")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		m.answered("m", r, rows, ids[i&(len(ids)-1)], "")
	}
}

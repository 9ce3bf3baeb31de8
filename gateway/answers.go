package gateway

// answerKey names an answer as feedback does.
type answerKey struct{ model, id string }

// answer is one request's answer, as feedback needs it: the model and ids
// it is kept under, per text the calibrated logits (softmax of which are the
// probabilities served), and whether a label came back for it already
// (nil until the first one).
type answer struct {
	model    string
	ids      [2]string
	n        int // ids in use
	start    int // texts answered before this one
	rows     [][]float32
	labelled []bool
}

// answerStore keeps the answers of the last remember texts for feedback to
// find by (model, id): the oldest requests are forgotten first, whole.
//
// Every answer, cache hits included, comes through add, and most gateways
// never receive feedback, so add only appends. Answers are indexed by id
// from the first find on, the backlog at once. Answers go into cur; once it
// holds remember texts it becomes prev and the old prev is dropped whole:
// an index of this size pays far more for deletes than for inserts, and
// this deletes nothing. Up to twice remember texts are held; find hides
// what the last remember have pushed out.
type answerStore struct {
	remember  int
	cur, prev generation
	texts     int  // every text answered so far
	indexing  bool // find has been asked: index each answer as it comes
}

// generation is a run of answers and their index by id, which covers the
// first indexed of them.
type generation struct {
	answers []*answer
	texts   int
	byID    map[answerKey]*answer
	indexed int
}

func (s *answerStore) add(a *answer) {
	a.start = s.texts
	s.texts += len(a.rows)
	s.cur.answers = append(s.cur.answers, a)
	if s.indexing {
		s.cur.index()
	}
	if s.cur.texts += len(a.rows); s.cur.texts >= s.remember {
		s.prev, s.cur = s.cur, generation{answers: make([]*answer, 0, len(s.cur.answers))}
	}
}

// find is the latest answer kept under k, or nil.
func (s *answerStore) find(k answerKey) *answer {
	s.indexing = true
	s.cur.index()
	s.prev.index()
	a := s.cur.byID[k]
	if a == nil {
		a = s.prev.byID[k]
	}
	if a == nil || s.texts-a.start > s.remember {
		return nil
	}
	return a
}

func (g *generation) index() {
	if g.byID == nil {
		g.byID = make(map[answerKey]*answer, len(g.answers))
	}
	for _, a := range g.answers[g.indexed:] {
		for _, id := range a.ids[:a.n] {
			g.byID[answerKey{a.model, id}] = a // a reused id names its latest answer
		}
	}
	g.indexed = len(g.answers)
}

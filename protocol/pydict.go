package protocol

import (
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// ParsePyDict parses str() of a Python dict {0: v0, 1: v1, ...} of floats,
// the BYTES element KServe's Hugging Face server returns for raw logits. The
// keys must be exactly 0..k-1, each once; values are Python float literals
// (including inf, -inf and nan). Errors say where the text went wrong.
func ParsePyDict(s string) ([]float32, error) {
	p := pyDictParser{s: s}
	return p.parse()
}

type pyDictParser struct {
	s   string
	pos int
}

func (p *pyDictParser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: logits %q at offset %d: %s", ErrBadGateway, Clip(p.s, 80), p.pos, fmt.Sprintf(format, args...))
}

// Clip shortens s to at most n bytes for a message, on a rune boundary,
// marking the cut with "…".
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func (p *pyDictParser) skipSpace() {
	for p.pos < len(p.s) && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t' || p.s[p.pos] == '\n') {
		p.pos++
	}
}

func (p *pyDictParser) expect(c byte) error {
	p.skipSpace()
	if p.pos >= len(p.s) {
		return p.errorf("want %q, got the end", c)
	}
	if p.s[p.pos] != c {
		return p.errorf("want %q, got %q", c, p.s[p.pos])
	}
	p.pos++
	return nil
}

// token reads a run of characters that can make up a number literal.
func (p *pyDictParser) token() string {
	p.skipSpace()
	start := p.pos
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		if c == '-' || c == '+' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			p.pos++
			continue
		}
		break
	}
	return p.s[start:p.pos]
}

func (p *pyDictParser) parse() ([]float32, error) {
	if err := p.expect('{'); err != nil {
		return nil, err
	}
	var vals []float32
	seen := map[int]bool{}
	byKey := map[int]float32{}
	p.skipSpace()
	if p.pos < len(p.s) && p.s[p.pos] == '}' {
		p.pos++
		return nil, p.errorf("empty dict: no logits")
	}
	for {
		keyPos := p.pos
		tok := p.token()
		key, err := strconv.Atoi(tok)
		if err != nil || key < 0 {
			p.pos = keyPos
			return nil, p.errorf("want a label index, got %q", tok)
		}
		if seen[key] {
			return nil, p.errorf("label %d appears twice", key)
		}
		seen[key] = true
		if err := p.expect(':'); err != nil {
			return nil, err
		}
		valPos := p.pos
		tok = p.token()
		v, err := parsePyFloat(tok)
		if err != nil {
			p.pos = valPos
			return nil, p.errorf("want a float, got %q", tok)
		}
		byKey[key] = v
		p.skipSpace()
		if p.pos >= len(p.s) {
			return nil, p.errorf("unterminated dict")
		}
		if p.s[p.pos] == '}' {
			p.pos++
			break
		}
		if err := p.expect(','); err != nil {
			return nil, err
		}
	}
	p.skipSpace()
	if p.pos != len(p.s) {
		return nil, p.errorf("trailing text %q", p.s[p.pos:])
	}
	vals = make([]float32, len(byKey))
	for i := range vals {
		v, ok := byKey[i]
		if !ok {
			return nil, p.errorf("labels are not 0..%d", len(byKey)-1)
		}
		vals[i] = v
	}
	return vals, nil
}

// parsePyFloat reads a Python float literal as repr() writes it.
func parsePyFloat(tok string) (float32, error) {
	switch tok {
	case "inf":
		return float32(math.Inf(1)), nil
	case "-inf":
		return float32(math.Inf(-1)), nil
	case "nan", "-nan":
		return float32(math.NaN()), nil
	}
	if tok == "" || tok[0] == '+' || tok[len(tok)-1] == '.' && len(tok) == 1 {
		return 0, fmt.Errorf("not a float: %q", tok)
	}
	for _, c := range tok {
		if !(c >= '0' && c <= '9' || c == '.' || c == 'e' || c == 'E' || c == '-' || c == '+') {
			return 0, fmt.Errorf("not a float: %q", tok)
		}
	}
	f, err := strconv.ParseFloat(tok, 64)
	if err != nil {
		return 0, err
	}
	return float32(f), nil
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/chorusml/chorus/backends/kserve"
	"github.com/chorusml/chorus/protocol"
)

// feedbackItem and feedbackAnswer are the gateway's feedback wire format
// (api/openapi.json, v2Feedback).
type feedbackItem struct {
	ID    string `json:"id"`
	Index int    `json:"index"`
	Label int    `json:"label"`
}

type feedbackAnswer struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
	Window     *struct {
		Answers  int     `json:"answers"`
		Accuracy float64 `json:"accuracy"`
		NLL      float64 `json:"nll"`
		ECE      float64 `json:"ece"`
	} `json:"window"`
}

// replayFeedback is calibrate --url --feedback: each batch of the labelled
// file is answered by the running gateway under a request id of its own,
// as production traffic is, then its true labels are posted by that id to
// the model's feedback endpoint, so that chorus_confidence and the rolling
// gauges move. Nothing is fitted or written.
func replayFeedback(ctx context.Context, cmd *cobra.Command, f *calibrateFlags) error {
	sc, err := newRemoteScorer(ctx, f)
	if err != nil {
		return err
	}
	defer sc.close()
	texts, ys, err := readLabelled(f.data, sc.labels())
	if err != nil {
		return err
	}
	client := &http.Client{Transport: kserve.NewTransport(), Timeout: time.Minute}
	endpoint, err := url.JoinPath(f.url, "v2", "models", f.model, "feedback")
	if err != nil {
		return usageError{fmt.Errorf("--url: %w", err)}
	}
	bar := newBar(cmd.ErrOrStderr(), len(texts), "feeding back "+filepath.Base(f.data))
	var last feedbackAnswer
	accepted := 0
	for i := 0; i < len(texts); i += f.batch {
		end := min(i+f.batch, len(texts))
		id := "calibrate-" + uuid.NewString()
		if _, err := sc.score(protocol.WithRequestID(ctx, id), texts[i:end]); err != nil {
			return fmt.Errorf("answer %s lines %d-%d: %w", f.data, i+1, end, err)
		}
		items := make([]feedbackItem, 0, end-i)
		for j := i; j < end; j++ {
			items = append(items, feedbackItem{ID: id, Index: j - i, Label: ys[j]})
		}
		if last, err = postFeedback(ctx, client, endpoint, items); err != nil {
			return fmt.Errorf("feedback for %s lines %d-%d: %w", f.data, i+1, end, err)
		}
		accepted += last.Accepted
		_ = bar.Add(end - i)
	}
	_ = bar.Finish()
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "fed back %d labels to %s\n", accepted, f.model)
	if last.Window != nil {
		fmt.Fprintf(w, "rolling window (last %d labelled answers): accuracy %.4f  NLL %.4f  ECE %.4f\n",
			last.Window.Answers, last.Window.Accuracy, last.Window.NLL, last.Window.ECE)
	}
	return nil
}

// readLabelled reads the texts and label indices of a labelled JSONL file.
func readLabelled(path string, labels []string) ([]string, []int, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read data: %w", err)
	}
	var texts []string
	var ys []int
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for line := 1; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var ex example
		if err := json.Unmarshal(sc.Bytes(), &ex); err != nil {
			return nil, nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		y, err := labelIndex(ex.Label, labels)
		if err != nil {
			return nil, nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		texts, ys = append(texts, ex.Text), append(ys, y)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(texts) == 0 {
		return nil, nil, fmt.Errorf("%s: no examples", path)
	}
	return texts, ys, nil
}

func postFeedback(ctx context.Context, client *http.Client, endpoint string, items []feedbackItem) (feedbackAnswer, error) {
	var out feedbackAnswer
	body, err := json.Marshal(map[string]any{"feedback": items})
	if err != nil {
		return out, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return out, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return out, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e protocol.ErrorResponse
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			return out, fmt.Errorf("%s: %s", resp.Status, e.Error)
		}
		return out, errors.New(resp.Status)
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return out, fmt.Errorf("decode answer: %w", err)
	}
	return out, nil
}

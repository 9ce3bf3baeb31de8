package assemble

import (
	"log/slog"

	"github.com/chorusml/chorus/gateway"
	"github.com/chorusml/chorus/gateway/config"
)

// cascades builds the cascades of cfg over the models and ensembles
// already built (config validation has checked that every stage exists
// and is not a cascade).
func (b *builder) cascades(cfg *config.Config, byName map[string]gateway.Servable) ([]gateway.Servable, error) {
	answers, err := b.Metrics.CascadeAnswers()
	if err != nil {
		return nil, err
	}
	var out []gateway.Servable
	for _, mc := range cfg.Models {
		if !mc.IsCascade() {
			continue
		}
		var stages []gateway.CascadeStage
		for _, st := range mc.Stages {
			stages = append(stages, gateway.CascadeStage{Servable: byName[st.Name], MinConfidence: st.MinConfidence, LabelMap: st.LabelMap})
		}
		c, err := gateway.NewCascade(gateway.CascadeOptions{Name: mc.Name, Labels: mc.Labels, Stages: stages,
			SkipFailed: mc.OnStageFailure == config.StageFailureNext, Mode: scoring(mc).Mode, Threshold: mc.Threshold, Answers: answers})
		if err != nil {
			return nil, modelError(mc, err)
		}
		out = append(out, c)
		b.Log.Info("cascade loaded", slog.String("model", mc.Name), slog.Any("stages", c.StageNames()),
			slog.String("on_stage_failure", mc.OnStageFailure))
	}
	return out, nil
}

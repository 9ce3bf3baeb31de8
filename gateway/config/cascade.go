package config

import (
	"fmt"
	"math"
)

// Stage is one stage of a cascade.
type Stage struct {
	// Name of a model or an ensemble in the registry (not a cascade).
	// Required.
	Name string `yaml:"name"`
	// MinConfidence is the calibrated top-label probability at or above
	// which this stage's answer is final, in (0, 1]. Required on every
	// stage but the last, and not allowed on the last (it answers whatever
	// reaches it). Choose it with `chorus calibrate --cascade`.
	MinConfidence float64 `yaml:"min_confidence"`
	// LabelMap renames the stage's labels to the cascade's (stage label:
	// cascade label), for stages whose labels differ in name or order.
	LabelMap map[string]string `yaml:"label_map,omitempty"`
}

// Cascade failure policies (on_stage_failure).
const (
	StageFailureFail = "fail"
	StageFailureNext = "next"
)

// DefaultOnStageFailure fails the request when a stage fails.
const DefaultOnStageFailure = StageFailureFail

// IsCascade reports whether the model is a cascade of other models.
func (m Model) IsCascade() bool { return len(m.Stages) > 0 }

// validateCascades checks stages once every model is known.
func (c *Config) validateCascades(errs *problems) {
	byName := c.modelsByName()
	for i := range c.Models {
		m := &c.Models[i]
		path := fmt.Sprintf("models[%s]", m.Name)
		if !m.IsCascade() {
			if m.OnStageFailure != "" {
				errs.add(path+".on_stage_failure", "is for cascades (models with stages)")
			}
			continue
		}
		if m.OnStageFailure != StageFailureFail && m.OnStageFailure != StageFailureNext {
			errs.add(path+".on_stage_failure", "%q: want %s or %s", m.OnStageFailure, StageFailureFail, StageFailureNext)
		}
		if m.Calibration != "" || m.Temperature != DefaultTemperature {
			errs.add(path, "a cascade answers in its stages' calibration: set temperature or calibration on the stages")
		}
		if m.Activation != "" {
			errs.add(path+".activation", "a cascade scores with its stages' activation: set activation on the stages")
		}
		if len(m.Stages) < 2 {
			errs.add(path+".stages", "want at least two stages")
		}
		seen := map[string]bool{}
		for j, st := range m.Stages {
			sp := fmt.Sprintf("%s.stages[%d]", path, j)
			target, ok := byName[st.Name]
			switch {
			case st.Name == "":
				errs.add(sp+".name", "required")
			case st.Name == m.Name:
				errs.add(sp+".name", "a cascade cannot contain itself")
			case !ok:
				errs.add(sp+".name", "%q is not a model in this registry", st.Name)
			case target.IsCascade():
				errs.add(sp+".name", "%q is a cascade: stages must be models or ensembles", st.Name)
			case seen[st.Name]:
				errs.add(sp+".name", "%q appears twice", st.Name)
			}
			seen[st.Name] = true
			last := j == len(m.Stages)-1
			switch t := st.MinConfidence; {
			case last && t != 0 && len(m.Stages) > 1:
				errs.add(sp+".min_confidence", "the last stage answers whatever reaches it: leave min_confidence out")
			case !last && (!(t > 0 && t <= 1) || math.IsNaN(t)):
				errs.add(sp+".min_confidence", "%v: want a probability in (0, 1]", t)
			}
		}
	}
}

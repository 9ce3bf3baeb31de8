package deploy

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	kservev1alpha1 "github.com/kserve/kserve/pkg/apis/serving/v1alpha1"
	kservev1beta1 "github.com/kserve/kserve/pkg/apis/serving/v1beta1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	kustomize "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/yaml"

	"github.com/chorusml/chorus/gateway/config"
)

// typed returns the API type a manifest of this apiVersion and kind must decode into.
func typed(apiVersion, kind string) any {
	switch apiVersion + "/" + kind {
	case "v1/Namespace":
		return &corev1.Namespace{}
	case "v1/Service":
		return &corev1.Service{}
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}
	case "autoscaling/v2/HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}
	case "policy/v1/PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}
	case "serving.kserve.io/v1alpha1/ServingRuntime":
		return &kservev1alpha1.ServingRuntime{}
	case "serving.kserve.io/v1beta1/InferenceService":
		return &kservev1beta1.InferenceService{}
	case "kustomize.config.k8s.io/v1beta1/Kustomization":
		return &kustomize.Kustomization{}
	}
	return nil
}

// Every manifest decodes, with unknown fields rejected, into its API type
// (compose/ and grafana/ hold the local stack's files, not Kubernetes objects);
// every kustomization lists files that exist.
func TestManifestsDecodeStrictly(t *testing.T) {
	seen := map[string]int{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") || strings.HasPrefix(path, "compose") || strings.HasPrefix(path, "grafana") || filepath.Base(path) == "registry.yaml" {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, doc := range bytes.Split(raw, []byte("\n---")) {
			var head struct{ APIVersion, Kind string }
			if err := yaml.Unmarshal(doc, &head); err != nil {
				t.Errorf("%s[%d]: %v", path, i, err)
				continue
			}
			obj := typed(head.APIVersion, head.Kind)
			if obj == nil {
				t.Errorf("%s[%d]: no test type for %s %s", path, i, head.APIVersion, head.Kind)
				continue
			}
			if err := yaml.UnmarshalStrict(doc, obj); err != nil {
				t.Errorf("%s[%d] (%s): %v", path, i, head.Kind, err)
				continue
			}
			seen[head.Kind]++
			if k, ok := obj.(*kustomize.Kustomization); ok {
				for _, r := range append(k.Resources, configMapFiles(k)...) {
					if _, err := os.Stat(filepath.Join(filepath.Dir(path), r)); err != nil {
						t.Errorf("%s lists %s: %v", path, r, err)
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ServingRuntime", "InferenceService", "Kustomization"} {
		if seen[kind] == 0 {
			t.Errorf("no %s manifest", kind)
		}
	}
	t.Logf("decoded: %v", seen)
}

func configMapFiles(k *kustomize.Kustomization) []string {
	var out []string
	for _, g := range k.ConfigMapGenerator {
		out = append(out, g.FileSources...)
	}
	return out
}

// The gateway's probes point at Chorus's health routes, and the registry
// it mounts is one Chorus accepts.
func TestGatewayDeployment(t *testing.T) {
	raw, err := os.ReadFile("gateway/deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var d appsv1.Deployment
	if err := yaml.UnmarshalStrict(raw, &d); err != nil {
		t.Fatal(err)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if c.ReadinessProbe.HTTPGet.Path != "/v2/health/ready" || c.LivenessProbe.HTTPGet.Path != "/v2/health/live" {
		t.Errorf("probes %s / %s", c.ReadinessProbe.HTTPGet.Path, c.LivenessProbe.HTTPGet.Path)
	}
	if *d.Spec.Template.Spec.SecurityContext.RunAsNonRoot != true {
		t.Error("gateway runs as root")
	}
	reg, err := os.ReadFile("gateway/registry.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := config.Parse(reg, "."); err != nil {
		t.Errorf("gateway/registry.yaml: %v", err)
	}
}

// KServe's own Hugging Face server (modelFormat huggingface) takes
// --return_raw_logits for raw logits and silently ignores
// --disable_postprocess, answering labels that the gateway's replica then
// cannot read (502). Chorus's runtime accepts both spellings.
func TestKServeHuggingFaceGetsReturnRawLogits(t *testing.T) {
	raw, err := os.ReadFile("kserve/inferenceservice-sst2.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var isvc kservev1beta1.InferenceService
	if err := yaml.UnmarshalStrict(raw, &isvc); err != nil {
		t.Fatal(err)
	}
	m := isvc.Spec.Predictor.Model
	if m == nil || m.ModelFormat.Name != "huggingface" {
		t.Fatalf("want KServe's Hugging Face runtime, got %+v", m)
	}
	args := strings.Join(m.Args, " ")
	if !strings.Contains(args, "--return_raw_logits") || strings.Contains(args, "--disable_postprocess") {
		t.Errorf("KServe's server args %q: want --return_raw_logits, never --disable_postprocess", args)
	}
}

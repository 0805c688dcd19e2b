package docker

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluice-dev/sluice/ingest"
)

// k8sDoc is one Kubernetes object, decoded into the fields the tests read.
type k8sDoc struct {
	file       string
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Data map[string]string `yaml:"data"` // ConfigMap
	Spec struct {
		Replicas *int `yaml:"replicas"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Strategy struct {
			RollingUpdate struct {
				MaxSurge       any `yaml:"maxSurge"`
				MaxUnavailable any `yaml:"maxUnavailable"`
			} `yaml:"rollingUpdate"`
		} `yaml:"strategy"`
		Template struct {
			Metadata struct {
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"metadata"`
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
		PodMetricsEndpoints []struct {
			Port string `yaml:"port"`
			Path string `yaml:"path"`
		} `yaml:"podMetricsEndpoints"` // PodMonitor
		MaxUnavailable any `yaml:"maxUnavailable"` // PodDisruptionBudget
	} `yaml:"spec"`
	Resources []string `yaml:"resources"` // Kustomization
}

type podSpec struct {
	TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
	SecurityContext               struct {
		RunAsNonRoot bool `yaml:"runAsNonRoot"`
		RunAsUser    int  `yaml:"runAsUser"`
	} `yaml:"securityContext"`
	Containers []container `yaml:"containers"`
	Volumes    []struct {
		Name      string `yaml:"name"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
	} `yaml:"volumes"`
}

type container struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Env   []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	StartupProbe   *probe `yaml:"startupProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

func loadK8s(t *testing.T) []k8sDoc {
	t.Helper()
	files, err := filepath.Glob("k8s/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in k8s/: %v", err)
	}
	var docs []k8sDoc
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		for i := 0; ; i++ {
			var d k8sDoc
			err := dec.Decode(&d)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			d.file = filepath.Base(f)
			if d.APIVersion == "" || d.Kind == "" {
				t.Errorf("%s document %d has no apiVersion or kind", f, i)
			}
			if d.Kind != "Kustomization" && d.Metadata.Name == "" {
				t.Errorf("%s document %d (%s) has no metadata.name", f, i, d.Kind)
			}
			docs = append(docs, d)
		}
	}
	return docs
}

var quantityRe = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$`)

// quantityBytes parses a Kubernetes memory quantity such as 512Mi or 1G.
func quantityBytes(s string) (int64, error) {
	m := quantityRe.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("cannot parse quantity %q", s)
	}
	f, _ := strconv.ParseFloat(m[1], 64)
	mult := map[string]float64{"": 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}[m[2]]
	return int64(f * mult), nil
}

// TestK8sManifests checks that the manifests parse and agree with each other
// and with the configuration contract: the ConfigMap's config is valid with
// the container's environment, probes hit /healthz and /readyz on the port
// metrics.listen serves, scraping finds that port, the grace period covers a
// graceful shutdown and memory covers the in-flight budget.
func TestK8sManifests(t *testing.T) {
	docs := loadK8s(t)
	byKind := map[string][]k8sDoc{}
	for _, d := range docs {
		byKind[d.Kind] = append(byKind[d.Kind], d)
	}
	for _, k := range []string{"Deployment", "ConfigMap", "PodMonitor", "PodDisruptionBudget", "Kustomization"} {
		if len(byKind[k]) != 1 {
			t.Fatalf("want one %s in k8s/, found %d", k, len(byKind[k]))
		}
	}
	kust := byKind["Kustomization"][0]
	for _, d := range docs {
		if d.Kind != "Kustomization" && !contains(kust.Resources, d.file) {
			t.Errorf("kustomization.yaml does not list %s (%s)", d.file, d.Kind)
		}
	}
	for _, r := range kust.Resources {
		if _, err := os.Stat(filepath.Join("k8s", r)); err != nil {
			t.Errorf("kustomization.yaml lists %s: %v", r, err)
		}
	}

	dep := byKind["Deployment"][0]
	spec := dep.Spec
	if spec.Replicas == nil || *spec.Replicas != 3 {
		t.Errorf("Deployment replicas = %v, want 3 (one consumer group of three)", spec.Replicas)
	}
	labels := spec.Template.Metadata.Labels
	matches := func(what string, sel map[string]string) {
		t.Helper()
		if len(sel) == 0 {
			t.Errorf("%s has an empty selector", what)
		}
		for k, v := range sel {
			if labels[k] != v {
				t.Errorf("%s selects %s=%s, which the pod template does not carry", what, k, v)
			}
		}
	}
	matches("the Deployment", spec.Selector.MatchLabels)
	matches("the PodMonitor", byKind["PodMonitor"][0].Spec.Selector.MatchLabels)
	matches("the PodDisruptionBudget", byKind["PodDisruptionBudget"][0].Spec.Selector.MatchLabels)
	if fmt.Sprint(spec.Strategy.RollingUpdate.MaxSurge) != "0" {
		t.Errorf("maxSurge = %v, want 0: a surge pod pushes PostgreSQL connections past replicas x (max_conns+1)", spec.Strategy.RollingUpdate.MaxSurge)
	}

	pod := spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	if c.Image == "" || strings.Join(c.Args, " ") != "run" {
		t.Errorf("container image %q args %q, want an image and [run]", c.Image, c.Args)
	}
	env := map[string]string{}
	secretRef := false
	for _, e := range c.Env {
		env[e.Name] = e.Value
		if e.Name == "SLUICE_POSTGRES_URL" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil &&
			e.ValueFrom.SecretKeyRef.Name != "" && e.ValueFrom.SecretKeyRef.Key != "" {
			secretRef = true
		}
	}
	if !secretRef {
		t.Error("SLUICE_POSTGRES_URL must come from a Secret (valueFrom.secretKeyRef)")
	}

	// The config file: mounted from the ConfigMap where SLUICE_CONFIG points.
	cm := byKind["ConfigMap"][0]
	mountDir := ""
	for _, vm := range c.VolumeMounts {
		for _, v := range pod.Volumes {
			if v.Name == vm.Name && v.ConfigMap != nil && v.ConfigMap.Name == cm.Metadata.Name {
				mountDir = vm.MountPath
			}
		}
	}
	if mountDir == "" {
		t.Fatalf("the container does not mount ConfigMap %s", cm.Metadata.Name)
	}
	key := strings.TrimPrefix(env["SLUICE_CONFIG"], mountDir+"/")
	if _, ok := cm.Data[key]; !ok || env["SLUICE_CONFIG"] != mountDir+"/"+key {
		t.Fatalf("SLUICE_CONFIG %q is not a key of ConfigMap %s mounted at %s", env["SLUICE_CONFIG"], cm.Metadata.Name, mountDir)
	}
	if strings.Contains(cm.Data[key], "url:") {
		t.Errorf("the ConfigMap holds a postgres.url; it belongs in the Secret")
	}
	cfg, err := ingest.Parse([]byte(cm.Data[key]), func(k string) string {
		if k == "SLUICE_POSTGRES_URL" {
			return "postgres://sluice:secret@db.example:5432/sluice?sslmode=verify-full"
		}
		return env[k]
	})
	if err != nil {
		t.Fatalf("the ConfigMap's config with the container's environment: %v", err)
	}

	// Metrics, probes, scraping: one port.
	metricsPort := portOf(t, cfg.Metrics.Listen)
	if !strings.HasPrefix(cfg.Metrics.Listen, "0.0.0.0:") {
		t.Errorf("effective metrics.listen %q is not reachable by the kubelet and Prometheus; listen on 0.0.0.0", cfg.Metrics.Listen)
	}
	portName := ""
	for _, p := range c.Ports {
		if p.ContainerPort == metricsPort {
			portName = p.Name
		}
	}
	if portName == "" {
		t.Fatalf("no containerPort %d (metrics.listen %s) in %+v", metricsPort, cfg.Metrics.Listen, c.Ports)
	}
	for _, pc := range []struct {
		name, path string
		p          *probe
	}{{"startup", "/healthz", c.StartupProbe}, {"liveness", "/healthz", c.LivenessProbe}, {"readiness", "/readyz", c.ReadinessProbe}} {
		if pc.p == nil || pc.p.HTTPGet == nil {
			t.Errorf("no %s httpGet probe", pc.name)
			continue
		}
		if pc.p.HTTPGet.Path != pc.path {
			t.Errorf("%s probe path %q, want %s", pc.name, pc.p.HTTPGet.Path, pc.path)
		}
		if port := fmt.Sprint(pc.p.HTTPGet.Port); port != portName && port != strconv.Itoa(metricsPort) {
			t.Errorf("%s probe port %v, want %s (%d)", pc.name, pc.p.HTTPGet.Port, portName, metricsPort)
		}
	}
	ann := spec.Template.Metadata.Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != strconv.Itoa(metricsPort) || ann["prometheus.io/path"] != "/metrics" {
		t.Errorf("prometheus.io annotations %v, want scrape true, port %d, path /metrics", ann, metricsPort)
	}
	pm := byKind["PodMonitor"][0]
	if pm.APIVersion != "monitoring.coreos.com/v1" || len(pm.Spec.PodMetricsEndpoints) != 1 ||
		pm.Spec.PodMetricsEndpoints[0].Port != portName || pm.Spec.PodMetricsEndpoints[0].Path != "/metrics" {
		t.Errorf("PodMonitor %s endpoints %+v, want port %s path /metrics", pm.APIVersion, pm.Spec.PodMetricsEndpoints, portName)
	}

	// Graceful shutdown: leaving the group takes up to rebalance_timeout + 5s.
	if need := cfg.Kafka.RebalanceTimeout.D() + 5*time.Second; time.Duration(pod.TerminationGracePeriodSeconds)*time.Second < need {
		t.Errorf("terminationGracePeriodSeconds %d < kafka.rebalance_timeout + 5s (%s): in-flight batches would be killed", pod.TerminationGracePeriodSeconds, need)
	}

	// Memory sized for the in-flight budget plus one fetch.
	req, err := quantityBytes(c.Resources.Requests["memory"])
	if err != nil {
		t.Fatalf("memory request: %v", err)
	}
	limit, err := quantityBytes(c.Resources.Limits["memory"])
	if err != nil {
		t.Fatalf("memory limit: %v", err)
	}
	if need := int64(cfg.Batch.MaxInflightBytes) + int64(cfg.Kafka.FetchMaxBytes); req < need || limit < req {
		t.Errorf("memory request %s limit %s: want request >= max_inflight_bytes + fetch_max_bytes (%d MiB) and limit >= request",
			c.Resources.Requests["memory"], c.Resources.Limits["memory"], need>>20)
	}
	if c.Resources.Requests["cpu"] == "" {
		t.Error("no CPU request")
	}
	if v, ok := env["GOMEMLIMIT"]; ok {
		ml, err := ingest.ParseSize(v) // the Go runtime's syntax (768MiB) is sluice's
		if err != nil || ml >= limit || ml < req {
			t.Errorf("GOMEMLIMIT %s should lie between the memory request and limit (%v)", v, err)
		}
	}

	// Non-root, as the image's user.
	if !pod.SecurityContext.RunAsNonRoot || pod.SecurityContext.RunAsUser != imageUID(t) {
		t.Errorf("pod securityContext %+v, want runAsNonRoot and runAsUser %d (the image's user)", pod.SecurityContext, imageUID(t))
	}
	if !c.SecurityContext.ReadOnlyRootFilesystem || c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
		t.Errorf("container securityContext %+v, want a read-only root filesystem and no privilege escalation", c.SecurityContext)
	}
}

// imageUID returns the uid of the image's only user (docker/rootfs/passwd).
func imageUID(t *testing.T) int {
	t.Helper()
	raw, err := os.ReadFile("rootfs/passwd")
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Split(strings.TrimSpace(string(raw)), ":")
	if len(fields) != 7 {
		t.Fatalf("rootfs/passwd: want one passwd line, got %q", raw)
	}
	uid, err := strconv.Atoi(fields[2])
	if err != nil {
		t.Fatal(err)
	}
	return uid
}

func TestQuantityBytes(t *testing.T) {
	for in, want := range map[string]int64{"512Mi": 512 << 20, "1Gi": 1 << 30, "1G": 1e9, "100": 100, "1.5Gi": 3 << 29} {
		if got, err := quantityBytes(in); err != nil || got != want {
			t.Errorf("quantityBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if _, err := quantityBytes("lots"); err == nil {
		t.Error("quantityBytes(lots) did not fail")
	}
}

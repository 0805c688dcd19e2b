package docker

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluice-dev/sluice/ingest"
	"github.com/sluice-dev/sluice/loadgen"
)

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Volumes     []string          `yaml:"volumes"`
	DependsOn   yaml.Node         `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	StopGracePeriod string `yaml:"stop_grace_period"`
	Restart         string `yaml:"restart"`
}

// mountOf returns the container path a bind mount of source (relative to
// docker/) is mounted at.
func (s composeService) mountOf(source string) string {
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && filepath.Clean(parts[0]) == filepath.Clean(source) {
			return parts[1]
		}
	}
	return ""
}

// dependsOn returns the services s depends on and their conditions ("" for
// the short list form).
func (s composeService) dependsOn(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	switch s.DependsOn.Kind {
	case 0:
	case yaml.SequenceNode:
		var names []string
		if err := s.DependsOn.Decode(&names); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			out[n] = ""
		}
	case yaml.MappingNode:
		var m map[string]struct {
			Condition string `yaml:"condition"`
		}
		if err := s.DependsOn.Decode(&m); err != nil {
			t.Fatal(err)
		}
		for n, c := range m {
			out[n] = c.Condition
		}
	}
	return out
}

var portRe = regexp.MustCompile(`^(?:(\d+\.\d+\.\d+\.\d+):)?(\d+(?:-\d+)?)?:?(\d+)(?:/tcp|/udp)?$`)

// containerPorts returns the container ports s publishes.
func (s composeService) containerPorts(t *testing.T, name string) []int {
	t.Helper()
	var out []int
	for _, p := range s.Ports {
		m := portRe.FindStringSubmatch(p)
		if m == nil {
			t.Errorf("service %s: cannot parse port mapping %q", name, p)
			continue
		}
		n, _ := strconv.Atoi(m[3])
		out = append(out, n)
	}
	return out
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	raw, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(raw, &cf); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return cf
}

// TestComposeConfig checks the compose stack: with the compose CLI when
// there is one (it needs no engine), and always by reading the file and
// checking that its parts fit together: files it mounts exist, the sluice
// config parses and consumes what loadgen produces, Prometheus scrapes the
// port sluice listens on, Grafana reads the dashboard from where it is
// mounted.
func TestComposeConfig(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	switch {
	case exec.Command("docker", "compose", "version").Run() == nil:
		run(t, ctx, "", "docker", "compose", "-f", "compose.yaml", "config", "-q")
	case func() bool { _, err := exec.LookPath("docker-compose"); return err == nil }():
		run(t, ctx, "", "docker-compose", "-f", "compose.yaml", "config", "-q")
	default:
		t.Log("neither `docker compose` nor docker-compose found: checking compose.yaml by reading it only")
	}

	cf := loadCompose(t)
	for _, name := range []string{"kafka", "topics", "postgres", "sluice", "loadgen", "prometheus", "grafana"} {
		if _, ok := cf.Services[name]; !ok {
			t.Fatalf("compose.yaml has no service %s", name)
		}
	}
	for name, s := range cf.Services {
		if s.Image == "" && s.Build == nil {
			t.Errorf("service %s has neither image nor build", name)
		}
		if s.Build == nil && (!strings.Contains(s.Image, ":") || strings.HasSuffix(s.Image, ":latest")) {
			t.Errorf("service %s: image %q should be pinned to a version tag", name, s.Image)
		}
		s.containerPorts(t, name)
		for _, v := range s.Volumes {
			src, _, ok := strings.Cut(v, ":")
			if !ok {
				t.Errorf("service %s: volume %q has no container path", name, v)
				continue
			}
			if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") {
				if _, err := os.Stat(src); err != nil {
					t.Errorf("service %s mounts %s, which does not exist in docker/: %v", name, src, err)
				}
			} else if _, ok := cf.Volumes[src]; !ok {
				t.Errorf("service %s uses volume %s, which is not declared under volumes:", name, src)
			}
		}
		for dep, cond := range s.dependsOn(t) {
			d, ok := cf.Services[dep]
			if !ok {
				t.Errorf("service %s depends on unknown service %s", name, dep)
			}
			if cond == "service_healthy" && d.Healthcheck == nil {
				t.Errorf("service %s waits for %s to be healthy, but %s has no healthcheck", name, dep, dep)
			}
		}
	}

	// Kafka: KRaft, and what the other services dial.
	kafka := cf.Services["kafka"]
	if !strings.HasPrefix(kafka.Image, "apache/kafka:") {
		t.Errorf("kafka image %q, want apache/kafka", kafka.Image)
	}
	if roles := kafka.Environment["KAFKA_PROCESS_ROLES"]; roles != "broker,controller" {
		t.Errorf("KAFKA_PROCESS_ROLES = %q, want broker,controller (single-node KRaft)", roles)
	}
	if id, err := base64.RawURLEncoding.DecodeString(kafka.Environment["CLUSTER_ID"]); err != nil || len(id) != 16 {
		t.Errorf("CLUSTER_ID %q must be a base64url UUID (16 bytes): %v", kafka.Environment["CLUSTER_ID"], err)
	}
	internal := ""
	for _, l := range strings.Split(kafka.Environment["KAFKA_ADVERTISED_LISTENERS"], ",") {
		if rest, ok := strings.CutPrefix(l, "PLAINTEXT://"); ok {
			internal = rest
		}
	}
	if internal == "" {
		t.Fatalf("kafka advertises no PLAINTEXT listener for the other services: %q", kafka.Environment["KAFKA_ADVERTISED_LISTENERS"])
	}

	// Sluice: the config parses with the service's environment on top.
	sl := cf.Services["sluice"]
	if sl.Build == nil {
		t.Fatal("service sluice must be built from docker/Dockerfile")
	}
	if _, err := os.Stat(filepath.Join(sl.Build.Context, sl.Build.Dockerfile)); err != nil || filepath.Clean(sl.Build.Context) != ".." {
		t.Errorf("sluice build context %q dockerfile %q: want the repository root and docker/Dockerfile (%v)", sl.Build.Context, sl.Build.Dockerfile, err)
	}
	if sl.Environment["SLUICE_CONFIG"] != sl.mountOf("./sluice.yaml") || sl.Environment["SLUICE_CONFIG"] == "" {
		t.Errorf("SLUICE_CONFIG %q is not where ./sluice.yaml is mounted (%q)", sl.Environment["SLUICE_CONFIG"], sl.mountOf("./sluice.yaml"))
	}
	raw, err := os.ReadFile("sluice.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ingest.Parse(raw, func(k string) string { return sl.Environment[k] })
	if err != nil {
		t.Fatalf("sluice.yaml with the service's environment: %v", err)
	}
	if got := strings.Join(cfg.Kafka.Brokers, ","); got != internal {
		t.Errorf("sluice dials Kafka at %s, but kafka advertises %s", got, internal)
	}
	if !strings.Contains(cfg.Postgres.URL, "@postgres:5432/") {
		t.Errorf("sluice's postgres.url %q does not point at the postgres service", cfg.Postgres.URL)
	}
	metricsPort := portOf(t, cfg.Metrics.Listen)
	if !strings.HasPrefix(cfg.Metrics.Listen, "0.0.0.0:") {
		t.Errorf("metrics.listen %q is not reachable from Prometheus' container; listen on 0.0.0.0", cfg.Metrics.Listen)
	}
	if ports := sl.containerPorts(t, "sluice"); !reflect.DeepEqual(ports, []int{metricsPort}) {
		t.Errorf("sluice publishes container ports %v, want [%d] (metrics.listen)", ports, metricsPort)
	}
	grace, err := time.ParseDuration(sl.StopGracePeriod)
	if err != nil || grace < cfg.Kafka.RebalanceTimeout.D()+5*time.Second {
		t.Errorf("sluice stop_grace_period %q must be at least kafka.rebalance_timeout + 5s (%s): a shorter one kills the graceful shutdown", sl.StopGracePeriod, cfg.Kafka.RebalanceTimeout.D()+5*time.Second)
	}
	for dep, want := range map[string]string{"topics": "service_completed_successfully", "postgres": "service_healthy"} {
		if got := sl.dependsOn(t)[dep]; got != want {
			t.Errorf("sluice depends on %s with condition %q, want %q", dep, got, want)
		}
	}

	// The topics service creates what sluice consumes, with at least one
	// partition per writer, before sluice and loadgen start.
	tp := cf.Services["topics"]
	if tp.Restart != "no" {
		t.Errorf("topics is a one-shot service; restart %q, want \"no\"", tp.Restart)
	}
	if got := flagValue(tp.Command, "--bootstrap-server"); got != internal {
		t.Errorf("topics dials %q, kafka advertises %s", got, internal)
	}
	if got, want := flagValue(tp.Command, "--topic"), cfg.Tables[0].Topics[0]; got != want {
		t.Errorf("topics creates %q, sluice consumes %q", got, want)
	}
	partitions, err := strconv.Atoi(flagValue(tp.Command, "--partitions"))
	if err != nil || partitions < cfg.Postgres.MaxConns {
		t.Errorf("topics creates %q partitions, want at least postgres.max_conns (%d) so every writer has one", flagValue(tp.Command, "--partitions"), cfg.Postgres.MaxConns)
	}

	// The tables sluice.yaml configures are those of the events loadgen
	// produces, and loadgen's flags parse.
	lg := cf.Services["loadgen"]
	if lg.Image != sl.Image || len(lg.Command) == 0 || lg.Command[0] != "loadgen" {
		t.Fatalf("loadgen must run `loadgen` in the sluice image %q: image %q command %q", sl.Image, lg.Image, lg.Command)
	}
	var stdout, stderr bytes.Buffer
	if err := loadgen.LoadgenMain(context.Background(), append(lg.Command[1:len(lg.Command):len(lg.Command)], "--print-table-config", "public.events"), &stdout, &stderr); err != nil {
		t.Fatalf("loadgen flags %q: %v\n%s", lg.Command[1:], err, stderr.String())
	}
	want, err := ingest.Parse(stdout.Bytes(), func(k string) string { return sl.Environment[k] })
	if err != nil {
		t.Fatalf("the table config loadgen prints: %v\n%s", err, stdout.String())
	}
	if !reflect.DeepEqual(cfg.Tables, want.Tables) {
		t.Errorf("sluice.yaml's tables differ from what loadgen produces:\n got  %+v\n want %+v", cfg.Tables, want.Tables)
	}
	if b := flagValue(lg.Command, "--brokers"); b != internal {
		t.Errorf("loadgen produces to %q, kafka advertises %s", b, internal)
	}
	if p := flagValue(lg.Command, "--partitions"); p != "" && p != strconv.Itoa(partitions) {
		t.Errorf("loadgen would create the topic with %s partitions, the topics service with %d", p, partitions)
	}
	if got := lg.dependsOn(t)["topics"]; got != "service_completed_successfully" {
		t.Errorf("loadgen must wait for the topics service to complete, not %q", got)
	}

	// Prometheus scrapes sluice on metrics.listen's port and loads the rules.
	prom := cf.Services["prometheus"]
	var pc struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName string `yaml:"job_name"`
			DNS     []struct {
				Names []string `yaml:"names"`
				Port  int      `yaml:"port"`
			} `yaml:"dns_sd_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, "prometheus/prometheus.yml", &pc)
	if len(pc.RuleFiles) != 1 || pc.RuleFiles[0] != prom.mountOf("./prometheus/alerts.yaml") {
		t.Errorf("prometheus rule_files %q, want where alerts.yaml is mounted (%q)", pc.RuleFiles, prom.mountOf("./prometheus/alerts.yaml"))
	}
	if prom.mountOf("./prometheus/prometheus.yml") != "/etc/prometheus/prometheus.yml" {
		t.Errorf("prometheus.yml is mounted at %q", prom.mountOf("./prometheus/prometheus.yml"))
	}
	scraped := false
	for _, sc := range pc.ScrapeConfigs {
		for _, d := range sc.DNS {
			if reflect.DeepEqual(d.Names, []string{"sluice"}) && d.Port == metricsPort {
				scraped = true
			}
		}
	}
	if !scraped {
		t.Errorf("prometheus.yml does not scrape service sluice on port %d: %+v", metricsPort, pc.ScrapeConfigs)
	}

	// Grafana: the datasource the dashboard expects, the dashboard where the
	// provider looks.
	gr := cf.Services["grafana"]
	var ds struct {
		Datasources []struct {
			Type string `yaml:"type"`
			UID  string `yaml:"uid"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	readYAML(t, "grafana/provisioning/datasources/prometheus.yaml", &ds)
	d, _ := dashboardQueries(t)
	dsDefault := ""
	for _, v := range d["templating"].(map[string]any)["list"].([]any) {
		if vm := v.(map[string]any); vm["name"] == "datasource" {
			dsDefault, _ = vm["current"].(map[string]any)["value"].(string)
		}
	}
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || ds.Datasources[0].UID != dsDefault ||
		ds.Datasources[0].URL != "http://prometheus:9090" {
		t.Errorf("grafana datasource %+v: want one prometheus datasource with uid %q (the dashboard's default) at http://prometheus:9090", ds.Datasources, dsDefault)
	}
	if !contains(prom.containerPorts(t, "prometheus"), 9090) {
		t.Errorf("prometheus does not publish 9090")
	}
	var dp struct {
		Providers []struct {
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, "grafana/provisioning/dashboards/sluice.yaml", &dp)
	if len(dp.Providers) != 1 || dp.Providers[0].Type != "file" || dp.Providers[0].Options.Path != gr.mountOf("./grafana/dashboards") {
		t.Errorf("grafana dashboard provider %+v does not read %q, where ./grafana/dashboards is mounted", dp.Providers, gr.mountOf("./grafana/dashboards"))
	}
	for _, dir := range []string{"./grafana/provisioning/datasources", "./grafana/provisioning/dashboards"} {
		if !strings.HasPrefix(gr.mountOf(dir), "/etc/grafana/provisioning/") {
			t.Errorf("grafana mounts %s at %q, want under /etc/grafana/provisioning/", dir, gr.mountOf(dir))
		}
	}
	if home := gr.Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]; home != gr.mountOf("./grafana/dashboards")+"/sluice.json" {
		t.Errorf("grafana home dashboard %q is not the mounted sluice.json", home)
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// flagValue returns the value following flag name in args.
func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

func contains[T comparable](s []T, v T) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

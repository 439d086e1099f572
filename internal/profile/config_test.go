package profile

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// load writes content (if not "") as p's ipcluster.toml and loads it.
func load(t *testing.T, p *Profile, content string) (*Config, error) {
	t.Helper()
	if content != "" {
		if err := p.Ensure(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p.ConfigPath(), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return Load(p)
}

func TestDefault(t *testing.T) {
	want := &Config{
		Controller: ControllerConfig{
			IP: "127.0.0.1", HeartbeatPeriod: time.Second, HeartbeatMisses: 3,
			Scheduler: "least-load", PipelineDepth: 256, ResultCache: 10000,
			ResultCacheBytes: 1 << 30, TaskHistory: 100000,
		},
		Engines: EnginesConfig{N: 0, HeartbeatTimeout: 10 * time.Second, CaptureOutput: true},
		MPI:     MPIConfig{MPIExec: "mpiexec"},
		Log:     LogConfig{Level: "info"},
	}
	if got := Default(); !reflect.DeepEqual(got, want) {
		t.Errorf("Default() = %+v\nwant %+v", got, want)
	}
	if err := Default().Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
	got, err := load(t, testProfile(t, "default"), "")
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Load without a file = %+v, %v; want the defaults", got, err)
	}
}

func TestLoadFullFile(t *testing.T) {
	got, err := load(t, testProfile(t, "full"), `
[controller]
ip = "10.0.0.5"
client_port = 5000
engine_port = 5001
heartbeat_period = "250ms"
heartbeat_misses = 5
scheduler = "lru"
pipeline_depth = 2
result_cache = 0
result_cache_bytes = "512MiB"
task_history = 7

[engines]
n = 64
heartbeat_timeout = "1m30s"
capture_output = false

[mpi]
mpiexec = "/opt/mpi/bin/mpirun"
args = ["--map-by", "core"]

[log]
level = "debug"
`)
	want := &Config{
		Controller: ControllerConfig{
			IP: "10.0.0.5", ClientPort: 5000, EnginePort: 5001, HeartbeatPeriod: 250 * time.Millisecond,
			HeartbeatMisses: 5, Scheduler: "lru", PipelineDepth: 2, ResultCache: 0,
			ResultCacheBytes: 512 << 20, TaskHistory: 7,
		},
		Engines: EnginesConfig{N: 64, HeartbeatTimeout: 90 * time.Second, CaptureOutput: false},
		MPI:     MPIConfig{MPIExec: "/opt/mpi/bin/mpirun", Args: []string{"--map-by", "core"}},
		Log:     LogConfig{Level: "debug"},
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Load = %+v, %v\nwant %+v", got, err, want)
	}

	// A partial file leaves the other defaults alone.
	got, err = load(t, testProfile(t, "partial"), "[engines]\nn = 4\n")
	want = Default()
	want.Engines.N = 4
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Load = %+v, %v\nwant %+v", got, err, want)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		key    string
		mutate func(*Config)
	}{
		{"controller.ip", func(c *Config) { c.Controller.IP = "" }},
		{"controller.client_port", func(c *Config) { c.Controller.ClientPort = -1 }},
		{"controller.client_port", func(c *Config) { c.Controller.ClientPort = 65536 }},
		{"controller.engine_port", func(c *Config) { c.Controller.EnginePort = 70000 }},
		{"controller.engine_port", func(c *Config) { c.Controller.ClientPort, c.Controller.EnginePort = 5000, 5000 }},
		{"controller.heartbeat_period", func(c *Config) { c.Controller.HeartbeatPeriod = 0 }},
		{"controller.heartbeat_period", func(c *Config) { c.Controller.HeartbeatPeriod = -time.Second }},
		{"controller.heartbeat_misses", func(c *Config) { c.Controller.HeartbeatMisses = 0 }},
		{"controller.scheduler", func(c *Config) { c.Controller.Scheduler = "fifo" }},
		{"controller.pipeline_depth", func(c *Config) { c.Controller.PipelineDepth = 1 }},
		{"controller.result_cache", func(c *Config) { c.Controller.ResultCache = -1 }},
		{"controller.result_cache_bytes", func(c *Config) { c.Controller.ResultCacheBytes = -1 }},
		{"controller.task_history", func(c *Config) { c.Controller.TaskHistory = -1 }},
		{"engines.n", func(c *Config) { c.Engines.N = -1 }},
		{"engines.heartbeat_timeout", func(c *Config) { c.Engines.HeartbeatTimeout = 0 }},
		{"log.level", func(c *Config) { c.Log.Level = "trace" }},
	}
	schema := configSchema()
	for _, tt := range tests {
		c := Default()
		tt.mutate(c)
		err := c.Validate()
		ce, ok := errors.AsType[*ConfigError](err)
		if !ok || ce.Key != tt.key || ce.Source != "" || !strings.Contains(err.Error(), tt.key) {
			t.Errorf("%s: Validate() = %v; want a *ConfigError naming the key", tt.key, err)
		}
		if _, ok := schema[tt.key]; !ok {
			t.Errorf("%s is not a key of the configuration file", tt.key)
		}
	}

	// Every problem is reported.
	c := Default()
	c.Controller.PipelineDepth, c.Log.Level = 0, ""
	err := c.Validate()
	for _, key := range []string{"controller.pipeline_depth", "log.level"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("Validate() = %v; want it to name %s", err, key)
		}
	}

	// Edge values are fine.
	c = Default()
	c.Controller.ClientPort, c.Controller.EnginePort, c.Controller.HeartbeatMisses = 65535, 1, 1
	c.Controller.Scheduler, c.Log.Level = "lru", "error"
	if err := c.Validate(); err != nil {
		t.Errorf("Validate() = %v", err)
	}
}

func TestLoadFileErrors(t *testing.T) {
	tests := []struct {
		name, content string
		want          []string // substrings of the error, besides the file
		key           string   // the ConfigError's Key
	}{
		{"invalid value", "[controller]\npipeline_depth = 1\n", []string{"controller.pipeline_depth", "at least 2"}, "controller.pipeline_depth"},
		{"invalid scheduler", "[controller]\nscheduler = \"fifo\"\n", []string{"controller.scheduler", `"fifo"`}, "controller.scheduler"},
		{"invalid level", "[log]\nlevel = \"trace\"\n", []string{"log.level"}, "log.level"},
		{"invalid port", "[controller]\nengine_port = 99999\n", []string{"controller.engine_port", "99999"}, "controller.engine_port"},
		{"negative n", "[engines]\nn = -2\n", []string{"engines.n"}, "engines.n"},
		{"zero heartbeat", "[controller]\nheartbeat_period = \"0s\"\n", []string{"controller.heartbeat_period"}, "controller.heartbeat_period"},
		{"zero misses", "[controller]\nheartbeat_misses = 0\n", []string{"controller.heartbeat_misses"}, "controller.heartbeat_misses"},

		{"typo with suggestion", "[controller]\nheartbeat_perod = \"2s\"\n",
			[]string{`unknown key "controller.heartbeat_perod" (did you mean "controller.heartbeat_period"?)`}, "controller.heartbeat_perod"},
		{"typo without suggestion", "[controller]\nfrobnicate = 1\n", []string{`unknown key "controller.frobnicate"`}, "controller.frobnicate"},
		{"unknown section", "[controler]\nip = \"1.2.3.4\"\n",
			[]string{`unknown key "controler" (did you mean "controller"?)`}, "controler"},
		{"wrong case", "[controller]\nIP = \"1.2.3.4\"\n", []string{`unknown key "controller.IP" (did you mean "controller.ip"?)`}, "controller.IP"},
		{"wrong section", "n = 4\n", []string{`unknown key "n" (did you mean "engines.n"?)`}, "n"},

		{"string for integer", "[controller]\nclient_port = \"5000\"\n", []string{"controller.client_port", "integer"}, ""},
		{"string for bool", "[engines]\ncapture_output = \"yes\"\n", []string{"engines.capture_output", "boolean"}, ""},
		{"value for section", "controller = 5\n", []string{"controller"}, ""},
		{"float for integer", "[engines]\nn = 1.5\n", []string{"engines.n"}, ""},
		{"bad duration", "[controller]\nheartbeat_period = \"1 sec\"\n", []string{"controller.heartbeat_period", `"1 sec"`}, "controller.heartbeat_period"},
		{"integer duration", "[engines]\nheartbeat_timeout = 10\n", []string{"engines.heartbeat_timeout", "duration string"}, "engines.heartbeat_timeout"},
		{"bad size", "[controller]\nresult_cache_bytes = \"1XB\"\n", []string{"controller.result_cache_bytes", `"1XB"`}, "controller.result_cache_bytes"},
		{"negative size", "[controller]\nresult_cache_bytes = -1\n", []string{"controller.result_cache_bytes", "-1"}, "controller.result_cache_bytes"},
		{"bool size", "[controller]\nresult_cache_bytes = true\n", []string{"controller.result_cache_bytes"}, "controller.result_cache_bytes"},
		{"syntax", "[controller\nip = 1\n", []string{"toml: line 2"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testProfile(t, "default")
			c, err := load(t, p, tt.content)
			if err == nil {
				t.Fatalf("Load = %+v; want an error", c)
			}
			for _, want := range append(tt.want, p.ConfigPath()+": ") {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Load error %q\ndoes not contain %q", err, want)
				}
			}
			ce, ok := errors.AsType[*ConfigError](err)
			if !ok || ce.Source != p.ConfigPath() || (tt.key != "" && ce.Key != tt.key) {
				t.Errorf("Load error %#v; want a *ConfigError from the file with key %q", err, tt.key)
			}
		})
	}

	// Several unknown keys are all reported, keys under an unknown table once.
	_, err := load(t, testProfile(t, "default"), "[controller]\nipp = \"x\"\n[foo]\na = 1\nb = 2\n")
	if err == nil || strings.Count(err.Error(), "unknown key") != 2 || !strings.Contains(err.Error(), `"controller.ipp" (did you mean "controller.ip"?)`) ||
		!strings.Contains(err.Error(), `"foo"`) {
		t.Errorf("Load = %v; want controller.ipp and foo reported", err)
	}

	// An unreadable file is an error too.
	p := testProfile(t, "default")
	if err := os.MkdirAll(p.ConfigPath(), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil {
		t.Error("Load with a directory for ipcluster.toml succeeded")
	}
}

func TestLoadEnv(t *testing.T) {
	p := testProfile(t, "default")
	t.Setenv("IPCLUSTER_IP", "0.0.0.0")
	t.Setenv("IPCLUSTER_HEARTBEAT_PERIOD", "3s")
	t.Setenv("IPCLUSTER_SCHEDULER", "lru")
	t.Setenv("IPCLUSTER_N", "12")
	t.Setenv("IPCLUSTER_LOG_LEVEL", "warn")
	c, err := load(t, p, "[controller]\nip = \"10.1.1.1\"\nscheduler = \"least-load\"\npipeline_depth = 4\n[engines]\nn = 2\n")
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Controller.IP, want.Controller.HeartbeatPeriod, want.Controller.Scheduler = "0.0.0.0", 3*time.Second, "lru"
	want.Controller.PipelineDepth, want.Engines.N, want.Log.Level = 4, 12, "warn"
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Load = %+v\nwant %+v", c, want)
	}
}

func TestLoadEnvErrors(t *testing.T) {
	tests := []struct{ env, value, key string }{
		{"IPCLUSTER_N", "many", "engines.n"},
		{"IPCLUSTER_N", "-1", "engines.n"},
		{"IPCLUSTER_HEARTBEAT_PERIOD", "1", "controller.heartbeat_period"},
		{"IPCLUSTER_HEARTBEAT_PERIOD", "-1s", "controller.heartbeat_period"},
		{"IPCLUSTER_SCHEDULER", "fifo", "controller.scheduler"},
		{"IPCLUSTER_LOG_LEVEL", "verbose", "log.level"},
	}
	for _, tt := range tests {
		t.Run(tt.env+"="+tt.value, func(t *testing.T) {
			p := testProfile(t, "default")
			t.Setenv(tt.env, tt.value)
			c, err := load(t, p, "[log]\nlevel = \"debug\"\n")
			ce, ok := errors.AsType[*ConfigError](err)
			if !ok || ce.Source != tt.env || ce.Key != tt.key ||
				!strings.HasPrefix(err.Error(), tt.env+": ") || !strings.Contains(err.Error(), tt.key) {
				t.Errorf("Load = %+v, %v; want an error naming %s and %s", c, err, tt.env, tt.key)
			}
		})
	}
}

func TestTOML(t *testing.T) {
	custom := Default()
	custom.Controller.IP = `we"ird\` + "\t"
	custom.Controller.ClientPort, custom.Controller.HeartbeatPeriod = 1234, 1500*time.Millisecond
	custom.Controller.ResultCacheBytes, custom.Controller.Scheduler = 1000, "lru"
	custom.Engines.N, custom.Engines.CaptureOutput, custom.Log.Level = 8, false, "error"
	for _, c := range []*Config{Default(), custom} {
		text := c.TOML()
		for _, want := range []string{"# ", "[controller]\n", "[engines]\n", "[log]\n"} {
			if !strings.Contains(text, want) {
				t.Errorf("TOML() has no %q:\n%s", want, text)
			}
		}
		p := testProfile(t, "default")
		got, err := load(t, p, text)
		if err != nil || !reflect.DeepEqual(got, c) {
			t.Errorf("TOML() reads back as %+v, %v\nwant %+v\n%s", got, err, c, text)
		}
	}
	if text := Default().TOML(); !strings.Contains(text, `result_cache_bytes = "1GiB"`) || !strings.Contains(text, `heartbeat_period = "1s"`) {
		t.Errorf("Default().TOML() =\n%s", text)
	}
}

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want ByteSize // -1: error
	}{
		{"0", 0},
		{"1024", 1024},
		{"17B", 17},
		{"1KB", 1000},
		{"1KiB", 1024},
		{"3MB", 3e6},
		{"3MiB", 3 << 20},
		{"1GB", 1e9},
		{"1GiB", 1 << 30},
		{"2TiB", 2 << 40},
		{" 5 gib ", 5 << 30},
		{"8388607TiB", 8388607 << 40},
		{"8388608TiB", -1},
		{"99999999999999999999", -1},
		{"", -1},
		{"GiB", -1},
		{"-1GiB", -1},
		{"1.5GiB", -1},
		{"1XB", -1},
		{"1 G", -1},
		{"0x10", -1},
	}
	for _, tt := range tests {
		got, err := ParseByteSize(tt.in)
		if tt.want < 0 {
			if err == nil || !strings.Contains(err.Error(), `"`+tt.in+`"`) {
				t.Errorf("ParseByteSize(%q) = %d, %v; want an error naming the value", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestByteSizeString(t *testing.T) {
	tests := []struct {
		in   ByteSize
		want string
	}{
		{0, "0B"}, {1, "1B"}, {1000, "1KB"}, {1024, "1KiB"}, {1536, "1536B"}, {3000, "3KB"}, {1 << 30, "1GiB"},
		{1e9, "1GB"}, {3 << 40, "3TiB"}, {1001, "1001B"},
	}
	for _, tt := range tests {
		got := tt.in.String()
		back, err := ParseByteSize(got)
		if got != tt.want || err != nil || back != tt.in {
			t.Errorf("ByteSize(%d).String() = %q (reads back as %d, %v); want %q", tt.in, got, back, err, tt.want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"abc", "", 3}, {"", "ab", 2}, {"ip", "ip", 0}, {"ipp", "ip", 1},
		{"heartbeat_perod", "heartbeat_period", 1}, {"kitten", "sitting", 3}, {"lru", "url", 2},
	}
	for _, tt := range tests {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

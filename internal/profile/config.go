package profile

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// The load-balancing schedulers.
const (
	SchedulerLeastLoad = "least-load" // the engine with the fewest outstanding tasks
	SchedulerLRU       = "lru"        // the engine that has waited longest
)

// Config is a cluster's configuration, as read from ipcluster.toml.
type Config struct {
	Controller ControllerConfig `toml:"controller"`
	Engines    EnginesConfig    `toml:"engines"`
	MPI        MPIConfig        `toml:"mpi"`
	Log        LogConfig        `toml:"log"`
}

// MPIConfig is the [mpi] section, for ipcluster mpiexec.
type MPIConfig struct {
	MPIExec string   `toml:"mpiexec"` // the mpiexec to run
	Args    []string `toml:"args"`    // more mpiexec arguments, before --mpi-args'
}

// ControllerConfig is the [controller] section.
type ControllerConfig struct {
	IP               string        `toml:"ip"`               // interface to listen on
	ClientPort       int           `toml:"client_port"`      // 0 picks a free port
	EnginePort       int           `toml:"engine_port"`      // 0 picks a free port
	HeartbeatPeriod  time.Duration `toml:"heartbeat_period"` // an engine that sent nothing for this long sends a heartbeat
	HeartbeatMisses  int           `toml:"heartbeat_misses"` // an engine that misses this many is dead
	Scheduler        string        `toml:"scheduler"`        // SchedulerLeastLoad or SchedulerLRU
	PipelineDepth    int           `toml:"pipeline_depth"`   // most load-balanced tasks outstanding per engine
	ResultCache      int           `toml:"result_cache"`     // results kept for clients that are gone
	ResultCacheBytes ByteSize      `toml:"result_cache_bytes"`
	TaskHistory      int           `toml:"task_history"` // finished tasks remembered for status queries
	// Location is the host name connection files give for a controller
	// listening on every interface (ip "0.0.0.0"); default this host's name.
	Location string `toml:"location"`
}

// EnginesConfig is the [engines] section.
type EnginesConfig struct {
	N                int           `toml:"n"`                 // engines for `ipcluster start`; 0 = one per CPU core
	HeartbeatTimeout time.Duration `toml:"heartbeat_timeout"` // an engine that hears nothing from the controller this long exits
	CaptureOutput    bool          `toml:"capture_output"`    // send engines' stdout and stderr to clients
	// SSH is an ssh server, [user@]host[:port], through which engines
	// tunnel to the controller, for compute nodes that cannot reach it
	// directly (it listens on the login node's loopback, say).
	SSH string `toml:"ssh"`
}

// LogConfig is the [log] section.
type LogConfig struct {
	Level string `toml:"level"` // debug, info, warn or error
}

// Default returns the built-in configuration.
func Default() *Config {
	return &Config{
		Controller: ControllerConfig{
			IP:               "127.0.0.1",
			HeartbeatPeriod:  time.Second,
			HeartbeatMisses:  3,
			Scheduler:        SchedulerLeastLoad,
			PipelineDepth:    256,
			ResultCache:      10000,
			ResultCacheBytes: 1 << 30,
			TaskHistory:      100000,
		},
		Engines: EnginesConfig{HeartbeatTimeout: 10 * time.Second, CaptureOutput: true},
		MPI:     MPIConfig{MPIExec: "mpiexec"},
		Log:     LogConfig{Level: "info"},
	}
}

// ConfigError is a problem with the configuration.
type ConfigError struct {
	// Source is the configuration file or environment variable the
	// problem came from, or "" for a value set in code (such as a flag).
	Source string
	// Key is the full key concerned, such as "controller.heartbeat_period",
	// or "" if not known.
	Key string
	// Err describes the problem; its message names the key.
	Err error
}

func (e *ConfigError) Error() string {
	if e.Source == "" {
		return e.Err.Error()
	}
	return e.Source + ": " + e.Err.Error()
}

func (e *ConfigError) Unwrap() error { return e.Err }

// Validate checks every value, returning a [*ConfigError] for each bad one
// (joined with [errors.Join]) or nil.
func (c *Config) Validate() error { return c.validate("") }

func (c *Config) validate(source string) error {
	var errs []error
	check := func(ok bool, key, format string, args ...any) {
		if !ok {
			errs = append(errs, &ConfigError{Source: source, Key: key, Err: fmt.Errorf(key+" "+format, args...)})
		}
	}
	ct, en := &c.Controller, &c.Engines
	check(ct.IP != "", "controller.ip", "must not be empty")
	check(0 <= ct.ClientPort && ct.ClientPort <= 65535, "controller.client_port", "must be in 0..65535, not %d", ct.ClientPort)
	check(0 <= ct.EnginePort && ct.EnginePort <= 65535, "controller.engine_port", "must be in 0..65535, not %d", ct.EnginePort)
	check(ct.EnginePort == 0 || ct.EnginePort != ct.ClientPort, "controller.engine_port", "must differ from controller.client_port (%d)", ct.ClientPort)
	check(ct.HeartbeatPeriod > 0, "controller.heartbeat_period", "must be positive, not %v", ct.HeartbeatPeriod)
	check(ct.HeartbeatMisses >= 1, "controller.heartbeat_misses", "must be at least 1, not %d", ct.HeartbeatMisses)
	check(ct.Scheduler == SchedulerLeastLoad || ct.Scheduler == SchedulerLRU, "controller.scheduler",
		"must be %q or %q, not %q", SchedulerLeastLoad, SchedulerLRU, ct.Scheduler)
	check(ct.PipelineDepth >= 2, "controller.pipeline_depth", "must be at least 2 so engines never idle, not %d", ct.PipelineDepth)
	check(ct.ResultCache >= 0, "controller.result_cache", "must not be negative, not %d", ct.ResultCache)
	check(ct.ResultCacheBytes >= 0, "controller.result_cache_bytes", "must not be negative, not %d", ct.ResultCacheBytes)
	check(ct.TaskHistory >= 0, "controller.task_history", "must not be negative, not %d", ct.TaskHistory)
	check(en.N >= 0, "engines.n", "must not be negative, not %d", en.N)
	check(en.HeartbeatTimeout > 0, "engines.heartbeat_timeout", "must be positive, not %v", en.HeartbeatTimeout)
	check(!strings.ContainsAny(en.SSH, " \t\n/") && !strings.HasPrefix(en.SSH, "-"), "engines.ssh",
		"must be an ssh server, [user@]host[:port], not %q", en.SSH)
	check(!strings.ContainsAny(ct.Location, " \t\n/"), "controller.location", "must be a host name, not %q", ct.Location)
	check(c.MPI.MPIExec != "", "mpi.mpiexec", "must not be empty")
	check(slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level), "log.level",
		"must be debug, info, warn or error, not %q", c.Log.Level)
	return errors.Join(errs...)
}

// Load returns the configuration of p: the defaults, overridden by
// p.ConfigPath() if it exists, overridden by the environment. Flags are
// the caller's to apply; it should call [Config.Validate] after.
//
// The file is strict: unknown keys, values of the wrong type and invalid
// values are errors naming the file and the key.
//
// These environment variables, when set and not empty, override the file:
//
//	IPCLUSTER_IP                controller.ip
//	IPCLUSTER_HEARTBEAT_PERIOD  controller.heartbeat_period
//	IPCLUSTER_SCHEDULER         controller.scheduler
//	IPCLUSTER_N                 engines.n
//	IPCLUSTER_MPIEXEC           mpi.mpiexec
//	IPCLUSTER_LOG_LEVEL         log.level
//
// A bad value is an error naming the variable.
func Load(p *Profile) (*Config, error) {
	c := Default()
	path := p.ConfigPath()
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read configuration: %w", err)
	default:
		if err := c.decode(path, string(data)); err != nil {
			return nil, err
		}
	}
	if err := c.applyEnv(); err != nil {
		return nil, err
	}
	return c, nil
}

// decode overlays the TOML document data, read from file, onto c.
func (c *Config) decode(file, data string) error {
	md, err := toml.Decode(data, c)
	if err != nil {
		ce := &ConfigError{Source: file, Err: err}
		if pe, ok := errors.AsType[toml.ParseError](err); ok {
			ce.Key = pe.LastKey
		}
		return ce
	}
	schema := configSchema()
	known := slices.Sorted(maps.Keys(schema))
	var errs []error
	var unknown []toml.Key
	// md.Keys() not in the schema are md.Undecoded() plus keys that the
	// decoder matched to a field case-insensitively: strict means exact.
	for _, k := range md.Keys() {
		key := k.String()
		if _, ok := schema[key]; ok || slices.ContainsFunc(unknown, func(u toml.Key) bool {
			return len(u) < len(k) && slices.Equal(u, k[:len(u)])
		}) {
			continue // known, or inside a table already reported
		}
		unknown = append(unknown, k)
		msg := fmt.Sprintf("unknown key %q", key)
		if s := suggest(k, known); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		errs = append(errs, &ConfigError{Source: file, Key: key, Err: errors.New(msg)})
	}
	// The decoder reads an integer as nanoseconds; "1s" is what is meant.
	for _, key := range known {
		if schema[key] != reflect.TypeFor[time.Duration]() {
			continue
		}
		if t := md.Type(strings.Split(key, ".")...); t != "" && t != "String" {
			errs = append(errs, &ConfigError{Source: file, Key: key,
				Err: fmt.Errorf(`%s must be a duration string such as "1s" or "250ms", not %s`, key, strings.ToLower(t))})
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if len(c.MPI.Args) == 0 {
		c.MPI.Args = nil // "args = []" is the default
	}
	return c.validate(file)
}

// configSchema returns the type of every key of ipcluster.toml, sections
// included, by full name.
func configSchema() map[string]reflect.Type {
	schema := map[string]reflect.Type{}
	for sec := range reflect.TypeFor[Config]().Fields() {
		name := sec.Tag.Get("toml")
		schema[name] = sec.Type
		for f := range sec.Type.Fields() {
			schema[name+"."+f.Tag.Get("toml")] = f.Type
		}
	}
	return schema
}

// suggest returns the known key that k was probably meant to be, or "".
func suggest(k toml.Key, known []string) string {
	key := k.String()
	best, bestDist := "", 3 // suggest within edit distance 2
	for _, s := range known {
		if strings.EqualFold(s, key) {
			return s
		}
		if d := editDistance(key, s); d < bestDist {
			best, bestDist = s, d
		}
	}
	if best == "" { // a key in the wrong section?
		for _, s := range known {
			if i := strings.LastIndexByte(s, '.'); i >= 0 && s[i+1:] == k[len(k)-1] {
				return s
			}
		}
	}
	return best
}

// editDistance returns the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev, cur := make([]int, len(rb)+1), make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := range ra {
		cur[0] = i + 1
		for j := range rb {
			cost := 1
			if ra[i] == rb[j] {
				cost = 0
			}
			cur[j+1] = min(prev[j+1]+1, cur[j]+1, prev[j]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// applyEnv overlays the environment variables listed at [Load] onto c.
func (c *Config) applyEnv() error {
	setString := func(p *string) func(string) error {
		return func(v string) error { *p = v; return nil }
	}
	vars := []struct {
		name, key string
		set       func(string) error
	}{
		{"IPCLUSTER_IP", "controller.ip", setString(&c.Controller.IP)},
		{"IPCLUSTER_HEARTBEAT_PERIOD", "controller.heartbeat_period", func(v string) (err error) {
			c.Controller.HeartbeatPeriod, err = time.ParseDuration(v)
			return err
		}},
		{"IPCLUSTER_SCHEDULER", "controller.scheduler", setString(&c.Controller.Scheduler)},
		{"IPCLUSTER_N", "engines.n", func(v string) (err error) {
			if c.Engines.N, err = strconv.Atoi(v); err != nil {
				return fmt.Errorf("%q is not an integer", v)
			}
			return nil
		}},
		{"IPCLUSTER_MPIEXEC", "mpi.mpiexec", setString(&c.MPI.MPIExec)},
		{"IPCLUSTER_LOG_LEVEL", "log.level", setString(&c.Log.Level)},
	}
	for _, ev := range vars {
		v := os.Getenv(ev.name)
		if v == "" {
			continue
		}
		if err := ev.set(v); err != nil {
			return &ConfigError{Source: ev.name, Key: ev.key, Err: fmt.Errorf("%s: %w", ev.key, err)}
		}
		// c was valid before this variable, so any error is this variable's.
		if err := c.validate(ev.name); err != nil {
			return err
		}
	}
	return nil
}

// TOML returns c as an ipcluster.toml file, with comments.
func (c *Config) TOML() string {
	ct, en := &c.Controller, &c.Engines
	return fmt.Sprintf(`# ipcluster configuration.
# Command-line flags override the environment, which overrides this file.

[controller]
# Address of the interface to listen on ($IPCLUSTER_IP); "auto": the address
# of this host's name, else of its first interface up.
ip = %s
# Ports for clients and engines; 0 picks a free port.
client_port = %d
engine_port = %d
# An engine that sent nothing for this long sends a heartbeat
# ($IPCLUSTER_HEARTBEAT_PERIOD).
heartbeat_period = %s
# An engine silent for this many periods is dead.
heartbeat_misses = %d
# Load balancing: "least-load" or "lru" ($IPCLUSTER_SCHEDULER).
scheduler = %s
# Most load-balanced tasks outstanding per engine; at least 2.
pipeline_depth = %d
# Results kept for clients that are gone: at most this many, and this many
# bytes (B, KB, MB, GB, KiB, MiB, GiB...).
result_cache = %d
result_cache_bytes = %s
# Finished tasks remembered for status queries.
task_history = %d

[engines]
# Engines started by "ipcluster start"; 0 = one per CPU core ($IPCLUSTER_N).
n = %d
# An engine that hears nothing from the controller this long exits.
heartbeat_timeout = %s
# Send the engines' stdout and stderr to clients.
capture_output = %t

[mpi]
# The mpiexec that "ipcluster mpiexec" runs ($IPCLUSTER_MPIEXEC).
mpiexec = %s
# Arguments it always gets, before those of --mpi-args, e.g. ["--map-by", "core"].
args = [%s]

[log]
# debug, info, warn or error ($IPCLUSTER_LOG_LEVEL).
level = %s
`, tomlString(ct.IP), ct.ClientPort, ct.EnginePort, tomlString(ct.HeartbeatPeriod.String()),
		ct.HeartbeatMisses, tomlString(ct.Scheduler), ct.PipelineDepth, ct.ResultCache,
		tomlString(ct.ResultCacheBytes.String()), ct.TaskHistory,
		en.N, tomlString(en.HeartbeatTimeout.String()), en.CaptureOutput,
		tomlString(c.MPI.MPIExec), tomlList(c.MPI.Args), tomlString(c.Log.Level))
}

// tomlList writes the items of a TOML array of strings.
func tomlList(items []string) string {
	quoted := make([]string, len(items))
	for i, s := range items {
		quoted[i] = tomlString(s)
	}
	return strings.Join(quoted, ", ")
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

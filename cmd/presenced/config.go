package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is every setting of the server. Each one is declared once, in
// settings below, and can come from four places; a later one wins:
//
//	default < YAML file (--config) < PRESENCE_* environment < command-line flag
type Config struct {
	Listen             string        // HTTP + WebSocket address
	DataDir            string        // Raft log and snapshots
	NodeName           string        // unique name in the cluster
	RaftAddr           string        // Raft address
	GossipAddr         string        // memberlist bind address (UDP and TCP)
	GossipAdvertise    string        // address peers use, if not GossipAddr
	Join               List          // peers to join: --join repeated, or comma-separated
	GossipProfile      string        // lan, wan, local
	GossipKey          string        // base64 AES key for gossip encryption
	ClusterLabel       string        // peers with another label are refused
	BootstrapExpect    int           // raft servers to wait for before bootstrapping (0: auto)
	SessionGrace       time.Duration // how long a dropped session is kept
	IdleAfter          time.Duration // inactivity before "idle"
	AwayAfter          time.Duration // inactivity before "away"
	HeartbeatTTL       time.Duration // lifetime of an HTTP heartbeat session
	HeartbeatInterval  time.Duration // WebSocket ping interval told to clients
	TypingTimeout      time.Duration // how long "typing" lasts without a refresh
	LastSeenTTL        time.Duration // how long last-seen records are kept
	AuthHS256Secret    string        // HS256 shared secret
	AuthPublicKeyFile  string        // PEM file of RS256/EdDSA public keys
	AllowOpen          bool          // allow open dev mode on a non-loopback address
	DebugEndpoints     bool          // serve /internal/v1/debug/... (unauthenticated; test clusters only)
	LogLevel           string        // debug|info|warn|error
	LogFormat          string        // json|console
	MaxRoomsPerSession int           // rooms one session may be in
	MaxDataBytes       int           // per-room data of one session
	MaxIDBytes         int           // user, session and room IDs
	MaxFrameBytes      int           // one WebSocket frame or HTTP body
	RateLimit          float64       // messages per second per connection
	SendQueue          int           // messages buffered per connection before it is dropped as slow
	SendQueueBytes     int           // bytes buffered per connection before it is dropped as slow
	MaxSubscriptions   int           // room subscriptions per WebSocket connection
	MaxSessionsPerUser int           // sessions of one user on one node
	ConfigFile         string        // YAML file read (flag or environment only)
	ShowVersion        bool          // print the version and exit (flag only)
}

// Where a setting may come from, besides its default.
type source uint8

const (
	fromFlag source = 1 << iota
	fromEnv
	fromFile
	fromAll = fromFlag | fromEnv | fromFile
)

// envPrefix starts every environment variable name.
const envPrefix = "PRESENCE_"

// setting declares one setting. Its environment variable and YAML key are
// derived from name: "session-grace" is PRESENCE_SESSION_GRACE and
// session_grace.
type setting struct {
	name  string // flag name
	usage string
	def   any    // the default, of the type ptr points to
	ptr   any    // *string, *bool, *int, *float64 or *time.Duration into the Config being loaded
	from  source // where it may be set besides the default; 0 means everywhere
}

func (s setting) env() string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(s.name, "-", "_"))
}

func (s setting) key() string { return strings.ReplaceAll(s.name, "-", "_") }

func (s setting) allows(src source) bool { return s.from == 0 || s.from&src != 0 }

// settings is the single declaration of every setting, bound to c.
// The defaults favour a safe single-node dev start: loopback addresses and
// timings that suit people on chat and document apps.
func settings(c *Config) []setting {
	return []setting{
		{"listen", "HTTP and WebSocket listen address (host:port)", "127.0.0.1:7070", &c.Listen, 0},
		{"data-dir", "directory for Raft log and snapshots", "./data", &c.DataDir, 0},
		{"node-name", "unique node name in the cluster (default: hostname)", hostname(), &c.NodeName, 0},
		{"raft-addr", "Raft address for room metadata (host:port)", "127.0.0.1:7071", &c.RaftAddr, 0},
		{"gossip-addr", "gossip (memberlist) bind address, UDP and TCP (host:port)", "127.0.0.1:7946", &c.GossipAddr, 0},
		{"gossip-advertise", "gossip address peers should use, if not --gossip-addr (host:port)", "", &c.GossipAdvertise, 0},
		{"join", "peers to join (host:port; a DNS name may resolve to several); repeat the flag or separate with commas", List(""), &c.Join, 0},
		// lan suits one data centre; wan keeps memberlist's long timeouts for
		// regions; local is for one machine (dev, tests).
		{"gossip-profile", "gossip timing profile: lan, wan or local", "lan", &c.GossipProfile, 0},
		{"gossip-key", "base64 AES key (16, 24 or 32 bytes) encrypting gossip; empty: no encryption", "", &c.GossipKey, 0},
		{"cluster-label", "cluster label: nodes with another label are refused", "", &c.ClusterLabel, 0},
		// 0: a node without --join bootstraps itself, a node with --join is
		// added to the existing raft group by its leader.
		{"bootstrap-expect", "raft servers to wait for before bootstrapping a new cluster (0: 1 without --join, none with --join)", 0, &c.BootstrapExpect, 0},
		// Long enough to ride out a network change or a page reload, short
		// enough that a closed tab disappears promptly.
		{"session-grace", "how long a disconnected session stays present before it is removed", 15 * time.Second, &c.SessionGrace, 0},
		{"idle-after", "inactivity after which a session is shown idle", 60 * time.Second, &c.IdleAfter, 0},
		{"away-after", "inactivity after which a session is shown away (must exceed idle-after)", 5 * time.Minute, &c.AwayAfter, 0},
		{"heartbeat-ttl", "lifetime of an HTTP heartbeat session without a new heartbeat", 60 * time.Second, &c.HeartbeatTTL, 0},
		// Below the 30-60s idle timeouts of common proxies and load balancers.
		{"heartbeat-interval", "WebSocket ping interval told to clients", 25 * time.Second, &c.HeartbeatInterval, 0},
		{"typing-timeout", "how long a typing indicator lasts without a refresh", 3 * time.Second, &c.TypingTimeout, 0},
		{"last-seen-ttl", "how long last-seen records of departed users are kept", 168 * time.Hour, &c.LastSeenTTL, 0},
		{"auth-hs256-secret", "shared secret for HS256 tokens", "", &c.AuthHS256Secret, 0},
		{"auth-public-key-file", "PEM file of public keys for RS256 (RSA) and EdDSA (Ed25519) tokens", "", &c.AuthPublicKeyFile, 0},
		{"allow-open", "allow open dev mode (no secret, no key: clients name themselves) on a non-loopback address", false, &c.AllowOpen, 0},
		{"debug-endpoints", "serve GET /internal/v1/debug/sessions/{session} (what this node holds of a session) and Go profiles at /debug/pprof/ (unauthenticated: test clusters only)", false, &c.DebugEndpoints, 0},
		{"log-level", "log level: debug, info, warn or error", "info", &c.LogLevel, 0},
		{"log-format", "log format: json or console", "json", &c.LogFormat, 0},
		{"max-rooms-per-session", "rooms one session may be in at once", 100, &c.MaxRoomsPerSession, 0},
		{"max-data-bytes", "size limit of one session's data in one room", 2048, &c.MaxDataBytes, 0},
		{"max-id-bytes", "size limit of user, session and room IDs", 128, &c.MaxIDBytes, 0},
		{"max-frame-bytes", "size limit of one WebSocket message or HTTP request body", 65536, &c.MaxFrameBytes, 0},
		{"rate-limit", "messages per second allowed per connection", 50.0, &c.RateLimit, 0},
		{"send-queue", "messages buffered per connection before it is dropped as slow", 512, &c.SendQueue, 0},
		{"send-queue-bytes", "bytes buffered per connection before it is dropped as slow", 8 << 20, &c.SendQueueBytes, 0},
		{"max-subscriptions", "room subscriptions per WebSocket connection", 100, &c.MaxSubscriptions, 0},
		{"max-sessions-per-user", "sessions (tabs, devices, agents, heartbeat clients) of one user on one node", 100, &c.MaxSessionsPerUser, 0},
		{"config", "YAML file of settings (keys are flag names with _ for -)", "", &c.ConfigFile, fromFlag | fromEnv},
		{"version", "print the version and exit", false, &c.ShowVersion, fromFlag},
	}
}

func hostname() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "presenced"
}

// LoadConfig builds a Config from the defaults, the YAML file named by
// --config or PRESENCE_CONFIG, the environment (read through getenv, so tests
// need not touch the real one) and args (without the program name), in that
// order of precedence. An environment variable set to "" counts as unset.
// With --version, only the defaults and flags are read. -h or --help
// returns flag.ErrHelp; print WriteUsage's text then.
func LoadConfig(args []string, getenv func(string) (string, bool)) (Config, error) {
	return loadConfig(args, getenv, os.ReadFile)
}

func loadConfig(args []string, getenv func(string) (string, bool), readFile func(string) ([]byte, error)) (Config, error) {
	// First pass: the flags alone, to find --config and --version and to
	// report command-line mistakes before anything else.
	flagsOnly, err := parseFlags(args)
	if err != nil || flagsOnly.ShowVersion {
		return flagsOnly, err
	}

	var c Config
	table := settings(&c)
	setDefaults(table)
	path := flagsOnly.ConfigFile
	if path == "" {
		path, _ = getenv(envPrefix + "CONFIG")
	}
	if path != "" {
		data, err := readFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("config file: %w", err)
		}
		if err := applyYAML(table, path, data); err != nil {
			return Config{}, err
		}
	}
	for _, s := range table {
		if !s.allows(fromEnv) {
			continue
		}
		if v, ok := getenv(s.env()); ok && v != "" {
			if err := set(s.ptr, v); err != nil {
				return Config{}, fmt.Errorf("environment %s (--%s): %w", s.env(), s.name, err)
			}
		}
	}
	// Last pass: the flags again, now over the file and environment.
	fs := newFlagSet(table)
	if err := fs.Parse(args); err != nil {
		return Config{}, fmt.Errorf("command line: %w", err)
	}
	return c, nil
}

// parseFlags applies args over the defaults only.
func parseFlags(args []string) (Config, error) {
	var c Config
	table := settings(&c)
	setDefaults(table)
	fs := newFlagSet(table)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, flag.ErrHelp
		}
		return Config{}, fmt.Errorf("command line: %w", err)
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("command line: unexpected argument %q", fs.Arg(0))
	}
	return c, nil
}

func setDefaults(table []setting) {
	for _, s := range table {
		assign(s.ptr, s.def)
	}
}

// assign stores def into ptr. A type mismatch is a mistake in settings.
func assign(ptr, def any) {
	switch p := ptr.(type) {
	case *string:
		*p = def.(string)
	case *List:
		*p = def.(List)
	case *bool:
		*p = def.(bool)
	case *int:
		*p = def.(int)
	case *float64:
		*p = def.(float64)
	case *time.Duration:
		*p = def.(time.Duration)
	default:
		panic(fmt.Sprintf("config: unsupported setting type %T", ptr))
	}
}

// set parses text into ptr. It is the one parser behind flags, environment
// and YAML, so all three accept the same spellings.
func set(ptr any, text string) error {
	switch p := ptr.(type) {
	case *string:
		*p = text
	case *List:
		*p = List(text)
	case *bool:
		v, err := strconv.ParseBool(text)
		if err != nil {
			return fmt.Errorf("invalid boolean %q (want true, false, 1 or 0)", text)
		}
		*p = v
	case *int:
		v, err := strconv.Atoi(text)
		if err != nil {
			return fmt.Errorf("invalid integer %q", text)
		}
		*p = v
	case *float64:
		v, err := strconv.ParseFloat(text, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("invalid number %q", text)
		}
		*p = v
	case *time.Duration:
		v, err := time.ParseDuration(text)
		if err != nil {
			return fmt.Errorf("invalid duration %q (want Go syntax such as 15s or 5m)", text)
		}
		*p = v
	default:
		panic(fmt.Sprintf("config: unsupported setting type %T", ptr))
	}
	return nil
}

// show formats a setting's value for usage text.
func show(ptr any) string {
	switch p := ptr.(type) {
	case *string:
		return strconv.Quote(*p)
	case *List:
		return strconv.Quote(string(*p))
	case *time.Duration:
		// "168h0m0s" reads better as "168h", "5m0s" as "5m".
		s := p.String()
		if strings.HasSuffix(s, "m0s") {
			s = strings.TrimSuffix(s, "0s")
		}
		if strings.HasSuffix(s, "h0m") {
			s = strings.TrimSuffix(s, "0m")
		}
		return s
	case *float64:
		return strconv.FormatFloat(*p, 'g', -1, 64)
	case *bool:
		return strconv.FormatBool(*p)
	case *int:
		return strconv.Itoa(*p)
	}
	return fmt.Sprint(ptr)
}

// typeName names a setting's type for usage text; "" for a bool, which
// takes no argument.
func typeName(ptr any) string {
	switch ptr.(type) {
	case *string:
		return "string"
	case *bool:
		return ""
	case *int:
		return "int"
	case *float64:
		return "float"
	case *time.Duration:
		return "duration"
	}
	return "value"
}

// List is a comma-separated list setting; on the command line the flag may
// also be repeated (each occurrence adds to the list given by flags, which
// replaces one from the file or environment).
type List string

// Items splits the list, dropping empty items.
func (l List) Items() []string {
	var out []string
	for _, p := range strings.Split(string(l), ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// flagValue adapts a setting to flag.Value.
type flagValue struct {
	ptr  any
	seen *bool // a List flag given before in this parse: append
}

func (v flagValue) String() string {
	if v.ptr == nil { // flag's zero-value probe
		return ""
	}
	return show(v.ptr)
}

func (v flagValue) Set(text string) error {
	if l, ok := v.ptr.(*List); ok && v.seen != nil {
		if *v.seen && *l != "" {
			*l += List("," + text)
			return nil
		}
		*v.seen = true
	}
	return set(v.ptr, text)
}

// IsBoolFlag lets "--allow-open" stand for "--allow-open=true".
func (v flagValue) IsBoolFlag() bool {
	_, ok := v.ptr.(*bool)
	return ok
}

func newFlagSet(table []setting) *flag.FlagSet {
	fs := flag.NewFlagSet("presenced", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned; WriteUsage prints help
	for _, s := range table {
		if s.allows(fromFlag) {
			fs.Var(flagValue{ptr: s.ptr, seen: new(bool)}, s.name, s.usage)
		}
	}
	return fs
}

// WriteUsage writes the help text: every setting with its flag, environment
// variable, YAML key and default.
func WriteUsage(w io.Writer) {
	var c Config
	table := settings(&c)
	setDefaults(table)
	fmt.Fprintf(w, "Usage: presenced [flags]\n\n")
	fmt.Fprintf(w, "Each setting comes from, in increasing precedence: its default, the YAML file\n")
	fmt.Fprintf(w, "named by --config, its PRESENCE_* environment variable, its flag.\n\n")
	for _, s := range table {
		if t := typeName(s.ptr); t != "" {
			fmt.Fprintf(w, "  --%s %s\n", s.name, t)
		} else {
			fmt.Fprintf(w, "  --%s\n", s.name)
		}
		fmt.Fprintf(w, "        %s\n", s.usage)
		var where []string
		if s.allows(fromEnv) {
			where = append(where, "env "+s.env())
		}
		if s.allows(fromFile) {
			where = append(where, "yaml "+s.key())
		}
		where = append(where, "default "+show(s.ptr))
		fmt.Fprintf(w, "        (%s)\n", strings.Join(where, "; "))
	}
}

// applyYAML sets every key of a YAML mapping through the same parser as the
// flags. Unknown keys, nested values and repeated keys are errors that name
// the file, line and key.
func applyYAML(table []setting, path string, data []byte) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil // empty file or comments only
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil
	}
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("config file %s:%d: want a mapping of setting: value", path, root.Line)
	}
	byKey := make(map[string]setting, len(table))
	for _, s := range table {
		if s.allows(fromFile) {
			byKey[s.key()] = s
		}
	}
	seen := make(map[string]bool)
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return fmt.Errorf("config file %s:%d: keys must be setting names", path, k.Line)
		}
		s, ok := byKey[k.Value]
		if !ok {
			return fmt.Errorf("config file %s:%d: unknown setting %q", path, k.Line, k.Value)
		}
		if seen[k.Value] {
			return fmt.Errorf("config file %s:%d: setting %q given twice", path, k.Line, k.Value)
		}
		seen[k.Value] = true
		for v.Kind == yaml.AliasNode && v.Alias != nil {
			v = v.Alias
		}
		if v.Kind != yaml.ScalarNode {
			return fmt.Errorf("config file %s:%d: setting %s: want a single value", path, v.Line, k.Value)
		}
		if v.Tag == "!!null" {
			return fmt.Errorf("config file %s:%d: setting %s: no value", path, v.Line, k.Value)
		}
		if err := set(s.ptr, v.Value); err != nil {
			return fmt.Errorf("config file %s:%d: setting %s: %w", path, v.Line, k.Value, err)
		}
	}
	return nil
}

// Validate reports every setting that is out of range, joined into one error.
func (c Config) Validate() error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("--%s: "+format, append([]any{name}, args...)...))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"session-grace", c.SessionGrace},
		{"idle-after", c.IdleAfter},
		{"away-after", c.AwayAfter},
		{"heartbeat-ttl", c.HeartbeatTTL},
		{"heartbeat-interval", c.HeartbeatInterval},
		{"typing-timeout", c.TypingTimeout},
		{"last-seen-ttl", c.LastSeenTTL},
	} {
		if d.v <= 0 {
			bad(d.name, "must be positive, got %v", d.v)
		}
	}
	if c.IdleAfter > 0 && c.AwayAfter <= c.IdleAfter {
		bad("away-after", "must exceed --idle-after (%v), got %v", c.IdleAfter, c.AwayAfter)
	}
	for _, n := range []struct {
		name string
		v    int
	}{
		{"max-rooms-per-session", c.MaxRoomsPerSession},
		{"max-data-bytes", c.MaxDataBytes},
		{"max-id-bytes", c.MaxIDBytes},
		{"max-frame-bytes", c.MaxFrameBytes},
		{"send-queue", c.SendQueue},
		{"send-queue-bytes", c.SendQueueBytes},
		{"max-subscriptions", c.MaxSubscriptions},
		{"max-sessions-per-user", c.MaxSessionsPerUser},
	} {
		if n.v <= 0 {
			bad(n.name, "must be positive, got %d", n.v)
		}
	}
	if !(c.RateLimit > 0) || math.IsInf(c.RateLimit, 0) {
		bad("rate-limit", "must be a positive number, got %v", c.RateLimit)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log-level", "must be debug, info, warn or error, got %q", c.LogLevel)
	}
	switch c.LogFormat {
	case "json", "console":
	default:
		bad("log-format", "must be json or console, got %q", c.LogFormat)
	}
	if err := checkHostPort(c.Listen); err != nil {
		bad("listen", "%v", err)
	}
	if err := checkHostPort(c.GossipAddr); err != nil {
		bad("gossip-addr", "%v", err)
	}
	switch c.GossipProfile {
	case "lan", "wan", "local":
	default:
		bad("gossip-profile", "want lan, wan or local, got %q", c.GossipProfile)
	}
	if err := checkHostPort(c.RaftAddr); err != nil {
		bad("raft-addr", "%v", err)
	}
	if c.DataDir == "" {
		bad("data-dir", "must not be empty")
	}
	if c.NodeName == "" {
		bad("node-name", "must not be empty")
	}
	return errors.Join(errs...)
}

func checkHostPort(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want host:port, got %q", addr)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("invalid port in %q", addr)
	}
	return nil
}

package main

import (
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// env returns a getenv over a fixed map.
func env(kv map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := kv[k]
		return v, ok
	}
}

func noEnv(string) (string, bool) { return "", false }

func writeYAML(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "presenced.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigDefaults(t *testing.T) {
	c, err := LoadConfig(nil, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Listen:             "127.0.0.1:7070",
		DataDir:            "./data",
		NodeName:           hostname(),
		RaftAddr:           "127.0.0.1:7071",
		GossipAddr:         "127.0.0.1:7946",
		GossipProfile:      "lan",
		BootstrapExpect:    0,
		SessionGrace:       15 * time.Second,
		IdleAfter:          60 * time.Second,
		AwayAfter:          5 * time.Minute,
		HeartbeatTTL:       60 * time.Second,
		HeartbeatInterval:  25 * time.Second,
		TypingTimeout:      3 * time.Second,
		LastSeenTTL:        168 * time.Hour,
		LogLevel:           "info",
		LogFormat:          "json",
		MaxRoomsPerSession: 100,
		MaxDataBytes:       2048,
		MaxIDBytes:         128,
		MaxFrameBytes:      65536,
		RateLimit:          50,
		SendQueue:          512,
		SendQueueBytes:     8 << 20,
		MaxSubscriptions:   100,
		MaxSessionsPerUser: 100,
	}
	if c != want {
		t.Fatalf("defaults:\n got %+v\nwant %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
}

// TestConfigEverySettingEverySource sets each setting through each source it
// allows, so a setting added to the table cannot miss a source.
func TestConfigEverySettingEverySource(t *testing.T) {
	sample := func(ptr any) (text string, check func() bool) {
		switch p := ptr.(type) {
		case *string:
			return "x:1", func() bool { return *p == "x:1" }
		case *List:
			return "x:1", func() bool { return *p == "x:1" }
		case *bool:
			return "true", func() bool { return *p }
		case *int:
			return "7", func() bool { return *p == 7 }
		case *float64:
			return "2.5", func() bool { return *p == 2.5 }
		case *time.Duration:
			return "7s", func() bool { return *p == 7*time.Second }
		}
		t.Fatalf("unexpected type %T", ptr)
		return "", nil
	}
	var probe Config
	for _, s := range settings(&probe) {
		if s.name == "config" || s.name == "version" {
			continue // checked by their own tests
		}
		text, _ := sample(s.ptr)
		sources := map[string]func() (Config, error){
			"flag": func() (Config, error) { return LoadConfig([]string{"--" + s.name + "=" + text}, noEnv) },
			"env":  func() (Config, error) { return LoadConfig(nil, env(map[string]string{s.env(): text})) },
			"yaml": func() (Config, error) {
				return LoadConfig([]string{"--config", writeYAML(t, s.key()+": "+text+"\n")}, noEnv)
			},
		}
		for src, load := range sources {
			c, err := load()
			if err != nil {
				t.Fatalf("%s via %s: %v", s.name, src, err)
			}
			for _, got := range settings(&c) {
				if got.name != s.name {
					continue
				}
				if _, check := sample(got.ptr); !check() {
					t.Errorf("%s via %s: value not applied, got %s", s.name, src, show(got.ptr))
				}
			}
		}
	}
}

func TestConfigPrecedence(t *testing.T) {
	path := writeYAML(t, "session_grace: 1s\nidle_after: 2s\naway_after: 3s\nlisten: 127.0.0.1:1\n")
	e := env(map[string]string{
		"PRESENCE_CONFIG":        path,
		"PRESENCE_IDLE_AFTER":    "20s",
		"PRESENCE_AWAY_AFTER":    "30s",
		"PRESENCE_LOG_LEVEL":     "", // set but empty: ignored
		"PRESENCE_HEARTBEAT_TTL": "",
	})
	c, err := LoadConfig([]string{"--away-after", "300s"}, e)
	if err != nil {
		t.Fatal(err)
	}
	if c.ConfigFile != path {
		t.Errorf("ConfigFile = %q, want %q from PRESENCE_CONFIG", c.ConfigFile, path)
	}
	if c.SessionGrace != time.Second {
		t.Errorf("SessionGrace = %v, want 1s from YAML", c.SessionGrace)
	}
	if c.IdleAfter != 20*time.Second {
		t.Errorf("IdleAfter = %v, want 20s from env over YAML", c.IdleAfter)
	}
	if c.AwayAfter != 300*time.Second {
		t.Errorf("AwayAfter = %v, want 300s from flag over env and YAML", c.AwayAfter)
	}
	if c.Listen != "127.0.0.1:1" {
		t.Errorf("Listen = %q, want YAML's", c.Listen)
	}
	if c.LogLevel != "info" || c.HeartbeatTTL != 60*time.Second {
		t.Errorf("empty env values were applied: %q %v", c.LogLevel, c.HeartbeatTTL)
	}

	// --config on the command line wins over PRESENCE_CONFIG.
	other := writeYAML(t, "session_grace: 9s\n")
	c, err = LoadConfig([]string{"-config=" + other}, e)
	if err != nil {
		t.Fatal(err)
	}
	if c.SessionGrace != 9*time.Second || c.ConfigFile != other {
		t.Errorf("--config did not win over PRESENCE_CONFIG: %v %q", c.SessionGrace, c.ConfigFile)
	}
}

func TestConfigBooleans(t *testing.T) {
	for _, tt := range []struct {
		args []string
		env  string
		want bool
	}{
		{[]string{"--allow-open"}, "", true},
		{[]string{"--allow-open=false"}, "1", false},
		{[]string{"--allow-open=0"}, "true", false},
		{nil, "1", true},
		{nil, "true", true},
		{nil, "0", false},
		{nil, "false", false},
	} {
		e := map[string]string{}
		if tt.env != "" {
			e["PRESENCE_ALLOW_OPEN"] = tt.env
		}
		c, err := LoadConfig(tt.args, env(e))
		if err != nil {
			t.Fatalf("%v env %q: %v", tt.args, tt.env, err)
		}
		if c.AllowOpen != tt.want {
			t.Errorf("%v env %q: AllowOpen = %v, want %v", tt.args, tt.env, c.AllowOpen, tt.want)
		}
	}
	c, err := LoadConfig([]string{"--config", writeYAML(t, "allow_open: true\n")}, noEnv)
	if err != nil || !c.AllowOpen {
		t.Fatalf("YAML bool: %v %v", c.AllowOpen, err)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		yaml  string // written to a file passed with --config if non-empty
		wants []string
	}{
		{"bad duration flag", []string{"--session-grace", "soon"}, nil, "",
			[]string{"command line", "session-grace", `"soon"`}},
		{"bad duration env", nil, map[string]string{"PRESENCE_SESSION_GRACE": "soon"}, "",
			[]string{"PRESENCE_SESSION_GRACE", "--session-grace", `"soon"`}},
		{"bad duration yaml", nil, nil, "listen: 127.0.0.1:1\nsession_grace: 15\n",
			[]string{"config file", ":2:", "session_grace", "invalid duration"}},
		{"bad int env", nil, map[string]string{"PRESENCE_SEND_QUEUE": "lots"}, "",
			[]string{"PRESENCE_SEND_QUEUE", "invalid integer"}},
		{"bad float flag", []string{"--rate-limit=NaN"}, nil, "",
			[]string{"rate-limit", "invalid number"}},
		{"bad bool env", nil, map[string]string{"PRESENCE_ALLOW_OPEN": "yes"}, "",
			[]string{"PRESENCE_ALLOW_OPEN", "invalid boolean"}},
		{"bad bool yaml", nil, nil, "allow_open: yes\n",
			[]string{"allow_open", "invalid boolean"}},
		{"unknown flag", []string{"--listne", "x"}, nil, "",
			[]string{"command line", "listne"}},
		{"stray argument", []string{"serve"}, nil, "",
			[]string{"unexpected argument", "serve"}},
		{"unknown yaml key", nil, nil, "listen: 127.0.0.1:1\nsesion_grace: 1s\n",
			[]string{"config file", ":2:", `unknown setting "sesion_grace"`}},
		{"flag spelling in yaml", nil, nil, "session-grace: 1s\n",
			[]string{`unknown setting "session-grace"`}},
		{"config key in yaml", nil, nil, "config: other.yaml\n",
			[]string{`unknown setting "config"`}},
		{"version key in yaml", nil, nil, "version: true\n",
			[]string{`unknown setting "version"`}},
		{"nested yaml value", nil, nil, "listen:\n  host: a\n",
			[]string{"setting listen", "single value"}},
		{"null yaml value", nil, nil, "listen:\n",
			[]string{"setting listen", "no value"}},
		{"repeated yaml key", nil, nil, "listen: a:1\nlisten: b:2\n",
			[]string{"given twice"}},
		{"yaml not a mapping", nil, nil, "- listen\n",
			[]string{"want a mapping"}},
		{"yaml syntax", nil, nil, "listen: [\n",
			[]string{"config file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.yaml != "" {
				args = append([]string{"--config", writeYAML(t, tt.yaml)}, args...)
			}
			_, err := LoadConfig(args, env(tt.env))
			if err == nil {
				t.Fatal("no error")
			}
			t.Logf("error: %v", err)
			for _, w := range tt.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	_, err := LoadConfig([]string{"--config", filepath.Join(t.TempDir(), "missing.yaml")}, noEnv)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing config file: %v", err)
	}
}

func TestConfigYAMLForms(t *testing.T) {
	path := writeYAML(t, `# comments and quoting are fine
listen: "0.0.0.0:7070"
node_name: 42
rate_limit: 1e2
base: &grace 20s
`)
	if _, err := LoadConfig([]string{"--config", path}, noEnv); err == nil ||
		!strings.Contains(err.Error(), `unknown setting "base"`) {
		t.Fatalf("anchor key: err = %v", err)
	}
	path = writeYAML(t, `# comments and quoting are fine
listen: "0.0.0.0:7070"
node_name: 42
rate_limit: 1e2
session_grace: &grace 20s
heartbeat_ttl: *grace
`)
	c, err := LoadConfig([]string{"--config", path}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "0.0.0.0:7070" || c.NodeName != "42" || c.RateLimit != 100 ||
		c.SessionGrace != 20*time.Second || c.HeartbeatTTL != 20*time.Second {
		t.Fatalf("got %+v", c)
	}
	for _, body := range []string{"", "# nothing\n", "---\n", "~\n"} {
		if _, err := LoadConfig([]string{"--config", writeYAML(t, body)}, noEnv); err != nil {
			t.Errorf("YAML %q: %v", body, err)
		}
	}
}

func TestConfigVersionAndHelp(t *testing.T) {
	// --version parses even when the file or environment would not.
	c, err := LoadConfig([]string{"--version"}, env(map[string]string{
		"PRESENCE_SESSION_GRACE": "broken", "PRESENCE_CONFIG": "/nonexistent.yaml",
	}))
	if err != nil || !c.ShowVersion {
		t.Fatalf("--version: %+v, %v", c.ShowVersion, err)
	}
	if c, err := LoadConfig(nil, env(map[string]string{"PRESENCE_VERSION": "true"})); err != nil || c.ShowVersion {
		t.Fatalf("PRESENCE_VERSION must not be read: %v %v", c.ShowVersion, err)
	}
	for _, arg := range []string{"-h", "--help"} {
		if _, err := LoadConfig([]string{arg}, noEnv); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%s: err = %v, want flag.ErrHelp", arg, err)
		}
	}
}

func TestWriteUsage(t *testing.T) {
	var b strings.Builder
	WriteUsage(&b)
	out := b.String()
	var probe Config
	for _, s := range settings(&probe) {
		if !strings.Contains(out, "--"+s.name+" ") && !strings.Contains(out, "--"+s.name+"\n") {
			t.Errorf("usage lacks --%s", s.name)
		}
		if s.allows(fromEnv) && !strings.Contains(out, s.env()) {
			t.Errorf("usage lacks %s", s.env())
		}
	}
	for _, w := range []string{
		"PRESENCE_AUTH_HS256_SECRET", "yaml session_grace", "default 15s", "default 168h",
		"default 5m)", `default "127.0.0.1:7070"`, "default 50)", "default 2048)", "default false)",
		"--allow-open\n", "--session-grace duration\n",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("usage lacks %q", w)
		}
	}
	if strings.Contains(out, "PRESENCE_VERSION") || strings.Contains(out, "yaml config") {
		t.Error("usage offers sources that are not read")
	}
	t.Log("\n" + out)
}

func TestConfigValidate(t *testing.T) {
	base, err := LoadConfig(nil, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		modify func(*Config)
		want   string
	}{
		{"zero grace", func(c *Config) { c.SessionGrace = 0 }, "--session-grace: must be positive"},
		{"negative typing", func(c *Config) { c.TypingTimeout = -time.Second }, "--typing-timeout"},
		{"zero last seen", func(c *Config) { c.LastSeenTTL = 0 }, "--last-seen-ttl"},
		{"zero heartbeat interval", func(c *Config) { c.HeartbeatInterval = 0 }, "--heartbeat-interval"},
		{"away equals idle", func(c *Config) { c.AwayAfter = c.IdleAfter }, "--away-after: must exceed --idle-after"},
		{"away below idle", func(c *Config) { c.AwayAfter = time.Second }, "--away-after"},
		{"zero rooms", func(c *Config) { c.MaxRoomsPerSession = 0 }, "--max-rooms-per-session"},
		{"zero data", func(c *Config) { c.MaxDataBytes = 0 }, "--max-data-bytes"},
		{"zero ids", func(c *Config) { c.MaxIDBytes = 0 }, "--max-id-bytes"},
		{"negative frame", func(c *Config) { c.MaxFrameBytes = -1 }, "--max-frame-bytes"},
		{"zero queue", func(c *Config) { c.SendQueue = 0 }, "--send-queue"},
		{"zero rate", func(c *Config) { c.RateLimit = 0 }, "--rate-limit"},
		{"log level", func(c *Config) { c.LogLevel = "verbose" }, "--log-level"},
		{"log format", func(c *Config) { c.LogFormat = "xml" }, "--log-format"},
		{"listen no port", func(c *Config) { c.Listen = "localhost" }, "--listen: want host:port"},
		{"listen bad port", func(c *Config) { c.Listen = "localhost:http" }, "--listen: invalid port"},
		{"listen port too big", func(c *Config) { c.Listen = ":70000" }, "--listen: invalid port"},
		{"raft addr", func(c *Config) { c.RaftAddr = "nowhere" }, "--raft-addr"},
		{"empty data dir", func(c *Config) { c.DataDir = "" }, "--data-dir"},
		{"empty node name", func(c *Config) { c.NodeName = "" }, "--node-name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.modify(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want it to contain %q", err, tt.want)
			}
		})
	}

	c := base
	c.SessionGrace, c.LogLevel = 0, "loud"
	err = c.Validate()
	if err == nil || !strings.Contains(err.Error(), "--session-grace") || !strings.Contains(err.Error(), "--log-level") {
		t.Fatalf("Validate should report every problem: %v", err)
	}
	c = base
	c.Listen, c.RaftAddr = ":0", "[::1]:0"
	if err := c.Validate(); err != nil {
		t.Fatalf("port 0 and IPv6 rejected: %v", err)
	}
}

// FuzzLoadConfigYAML feeds arbitrary bytes as the config file: LoadConfig
// must return a config or an error, never panic.
func FuzzLoadConfigYAML(f *testing.F) {
	for _, seed := range []string{
		"", "listen: 127.0.0.1:1\n", "session_grace: 15s\nallow_open: true\nrate_limit: 2.5\n",
		"a: &x [*x]\n", "listen: [\n", "- 1\n- 2\n", "? [a]\n: b\n", "listen: !!binary aGk=\n",
		"session_grace: &g 1s\nheartbeat_ttl: *g\n", "---\n---\n", "max_frame_bytes: 99999999999999999999\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		read := func(string) ([]byte, error) { return data, nil }
		c, err := loadConfig([]string{"--config", "fuzz.yaml"}, noEnv, read)
		if err == nil {
			_ = c.Validate()
		}
	})
}

func TestJoinRepeatedOrCommaSeparated(t *testing.T) {
	env := func(k string) (string, bool) {
		if k == "PRESENCE_JOIN" {
			return "env1:7946", true
		}
		return "", false
	}
	c, err := LoadConfig([]string{"--join", "a:7946", "--join", "b:7946,c:7946"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Join.Items(), " "); got != "a:7946 b:7946 c:7946" {
		t.Fatalf("repeated --join: %q", got)
	}
	c, err = LoadConfig(nil, env)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Join.Items(), " "); got != "env1:7946" {
		t.Fatalf("env join: %q", got)
	}
}

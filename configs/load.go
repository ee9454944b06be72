package configs

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// EnvPrefix starts every environment override: CVEDGE_MQTT_BROKER overrides mqtt.broker.
const EnvPrefix = "CVEDGE"

// Load reads the YAML file at path (none when path is empty), applies the defaults and the
// CVEDGE_* environment, rejects unknown keys, fills derived defaults and validates. The
// error names every bad key.
func Load(path string) (*Config, error) { return load(path, (*Config).Validate) }

// LoadRuntime reads the onnxruntime section of a config file, with the same defaults,
// environment overrides and validation as Load, and nothing else: the file may hold that
// section alone (a file of session settings to compare with `cvedge bench --config`).
func LoadRuntime(path string) (ONNXRuntime, error) {
	cfg, err := load(path, func(c *Config) error {
		var p problems
		c.ONNXRuntime.validate(&p)
		return p.err()
	})
	if err != nil {
		return ONNXRuntime{}, err
	}
	return cfg.ONNXRuntime, nil
}

// load reads the config file at path (none when "") over the defaults and the environment,
// and checks it with validate.
func load(path string, validate func(*Config) error) (*Config, error) {
	v := viper.New()
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	def := Default()
	for key, val := range flatten("", structToMap(def)) {
		v.SetDefault(key, val)
	}
	base := ""
	if path != "" {
		// a YAML syntax error is reported with the line's key path and a hint; viper would
		// give the line alone
		if data, err := os.ReadFile(path); err == nil {
			if err := checkSyntax(data); err != nil {
				return nil, RedactError(fmt.Errorf("config %s: %w", path, err))
			}
		}
		v.SetConfigFile(path)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return nil, RedactError(fmt.Errorf("config %s: %w", path, err))
		}
		base = filepath.Dir(path)
	}
	settings := v.AllSettings()
	envEntries(settings, os.Environ())
	cfg, err := decode(settings)
	if err != nil {
		if path != "" {
			return nil, RedactError(fmt.Errorf("config %s: %w", path, err))
		}
		return nil, RedactError(fmt.Errorf("config: %w", err))
	}
	cfg.resolve(base)
	if err := validate(cfg); err != nil { // errors quote values: mask their secrets
		if path != "" {
			return nil, RedactError(fmt.Errorf("config %s: %w", path, err))
		}
		return nil, RedactError(fmt.Errorf("config: %w", err))
	}
	return cfg, nil
}

// envEntries applies CVEDGE_* variables to the entries of models and cameras, which viper
// cannot reach: CVEDGE_MODELS_<NAME>_<KEY> and CVEDGE_CAMERAS_<INDEX>_<KEY>, where KEY is
// the key path in capitals with '_' for '.' (CVEDGE_CAMERAS_0_PIPELINE_CROP_PADDING). A
// variable for a model or camera the file does not have is ignored.
func envEntries(settings map[string]any, environ []string) {
	modelKeys := leafKeys("", reflect.TypeOf(Model{}))
	cameraKeys := leafKeys("", reflect.TypeOf(Camera{}))
	for _, kv := range environ {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix+"_") {
			continue
		}
		rest := strings.TrimPrefix(name, EnvPrefix+"_")
		switch {
		case strings.HasPrefix(rest, "MODELS_"):
			models, _ := settings["models"].(map[string]any)
			for mname, raw := range models {
				entry, ok := raw.(map[string]any)
				prefix := "MODELS_" + envName(mname) + "_"
				if !ok || !strings.HasPrefix(rest, prefix) {
					continue
				}
				if key, found := modelKeys[strings.TrimPrefix(rest, prefix)]; found {
					setPath(entry, key, val)
				}
			}
		case strings.HasPrefix(rest, "CAMERAS_"):
			cams, _ := settings["cameras"].([]any)
			idx, tail, ok := strings.Cut(strings.TrimPrefix(rest, "CAMERAS_"), "_")
			n, err := strconv.Atoi(idx)
			if !ok || err != nil || n < 0 || n >= len(cams) {
				continue
			}
			entry, ok := cams[n].(map[string]any)
			if key, found := cameraKeys[tail]; ok && found {
				setPath(entry, key, val)
			}
		}
	}
}

// leafKeys maps the environment form of every key path of t (CROP_PADDING) to the path
// (pipeline.crop_padding).
func leafKeys(prefix string, t reflect.Type) map[string]string {
	out := map[string]string{}
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("mapstructure")
		if tag == "" {
			continue
		}
		key := join(prefix, tag)
		ft := t.Field(i).Type
		if ft.Kind() == reflect.Struct {
			for k, v := range leafKeys(key, ft) {
				out[k] = v
			}
			continue
		}
		out[envName(key)] = key
	}
	return out
}

func envName(key string) string {
	return strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(key))
}

// setPath sets a dotted key in nested maps, creating the maps on the way.
func setPath(m map[string]any, key, val string) {
	parts := strings.Split(key, ".")
	for _, p := range parts[:len(parts)-1] {
		sub, ok := m[p].(map[string]any)
		if !ok {
			sub = map[string]any{}
			m[p] = sub
		}
		m = sub
	}
	m[parts[len(parts)-1]] = val
}

// decode turns viper's settings into a Config. Map and list entries start from their own
// defaults, so a key left out of one camera keeps the camera default.
func decode(settings map[string]any) (*Config, error) {
	var problems []error
	for _, key := range unknownKeys("", settings, reflect.TypeOf(Config{})) {
		problems = append(problems, fmt.Errorf("%s: unknown key (check its spelling and place against configs/cvedge.yaml)", key))
	}
	problems = append(problems, badScalars("", settings, reflect.TypeOf(Config{}))...)
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	rawModels, _ := settings["models"].(map[string]any)
	rawCameras := settings["cameras"]
	delete(settings, "models")
	delete(settings, "cameras")

	cfg := Default()
	if err := decodeInto(settings, &cfg, ""); err != nil {
		problems = append(problems, err)
	}
	for name, raw := range rawModels {
		m := DefaultModel()
		if err := decodeInto(raw, &m, "models."+name); err != nil {
			problems = append(problems, err)
		}
		cfg.Models[name] = m
	}
	switch list := rawCameras.(type) {
	case nil:
	case []any:
		for i, raw := range list {
			c := DefaultCamera()
			if err := decodeInto(raw, &c, fmt.Sprintf("cameras[%d]", i)); err != nil {
				problems = append(problems, err)
			}
			cfg.Cameras = append(cfg.Cameras, c)
		}
	default:
		problems = append(problems, errors.New("cameras: must be a list of cameras, each starting with '- name:'"))
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	return &cfg, nil
}

// pointHook refuses a point that is not a list of two values: decoding would fill a short
// one with zeros without a word.
func pointHook(_, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeOf(Point{}) {
		return data, nil
	}
	if list, ok := data.([]any); !ok || len(list) != 2 {
		return nil, fmt.Errorf("%v is not a point: write [x, y], fractions of the frame's width and height from 0 to 1", data)
	}
	return data, nil
}

func decodeInto(input, out any, key string) error {
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook:       mapstructure.ComposeDecodeHookFunc(mapstructure.StringToTimeDurationHookFunc(), pointHook),
		WeaklyTypedInput: true,
		Result:           out,
	})
	if err != nil {
		return err
	}
	if err := dec.Decode(input); err != nil {
		if key != "" {
			return fmt.Errorf("%s: %w", key, err)
		}
		return err
	}
	return nil
}

var durationType = reflect.TypeOf(time.Duration(0))

// badScalars checks the values of the duration and whole-number keys under key (of type t)
// before they are decoded, where mapstructure would take a bare number as nanoseconds
// (keepalive: 30) and cut a fraction or an exponent off a count (queue_size: 1e9). It
// returns one error per bad key, in key order.
func badScalars(key string, val any, t reflect.Type) []error {
	if val == nil {
		return nil
	}
	if t == durationType {
		if err := checkDuration(key, val); err != nil {
			return []error{err}
		}
		return nil
	}
	var bad []error
	switch t.Kind() {
	case reflect.Pointer:
		return badScalars(key, val, t.Elem())
	case reflect.Struct:
		m, ok := val.(map[string]any)
		if !ok {
			return nil
		}
		fields := map[string]reflect.Type{}
		for i := 0; i < t.NumField(); i++ {
			if tag := t.Field(i).Tag.Get("mapstructure"); tag != "" {
				fields[tag] = t.Field(i).Type
			}
		}
		for k, v := range m {
			if ft, ok := fields[k]; ok {
				bad = append(bad, badScalars(join(key, k), v, ft)...)
			}
		}
	case reflect.Map:
		m, ok := val.(map[string]any)
		if !ok {
			return nil
		}
		for k, v := range m {
			bad = append(bad, badScalars(join(key, k), v, t.Elem())...)
		}
	case reflect.Slice:
		list, ok := val.([]any)
		if !ok {
			return nil
		}
		for i, v := range list {
			bad = append(bad, badScalars(fmt.Sprintf("%s[%d]", key, i), v, t.Elem())...)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if err := checkWhole(key, val); err != nil {
			return []error{err}
		}
	case reflect.Float32, reflect.Float64:
		if err := checkFinite(key, val); err != nil {
			return []error{err}
		}
	}
	sort.Slice(bad, func(i, j int) bool { return bad[i].Error() < bad[j].Error() })
	return bad
}

// checkDuration accepts a duration with a unit (30s, 500ms, 1h30m), a bare 0, or a value
// that is already a time.Duration (a default).
func checkDuration(key string, val any) error {
	noUnit := func(n string) error {
		return fmt.Errorf("%s: %s has no unit: write it as a duration with one, e.g. %ss (seconds), %sms or %sm", key, n, n, n, n)
	}
	rv := reflect.ValueOf(val)
	switch {
	case rv.Type() == durationType:
		return nil
	case rv.Kind() == reflect.String:
		s := strings.TrimSpace(rv.String())
		if _, err := time.ParseDuration(s); err == nil {
			return nil
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			if f == 0 {
				return nil
			}
			return noUnit(s)
		}
		return fmt.Errorf("%s: %q is not a duration: write a number with a unit, e.g. 30s, 500ms, 5m or 1h30m", key, s)
	case rv.CanInt():
		if rv.Int() == 0 {
			return nil
		}
		return noUnit(strconv.FormatInt(rv.Int(), 10))
	case rv.CanUint():
		if rv.Uint() == 0 {
			return nil
		}
		return noUnit(strconv.FormatUint(rv.Uint(), 10))
	case rv.CanFloat():
		if rv.Float() == 0 {
			return nil
		}
		return noUnit(strconv.FormatFloat(rv.Float(), 'g', -1, 64))
	}
	return nil // other types: mapstructure says what is wrong
}

// checkFinite refuses a number that is not one: YAML's .nan and .inf, or NaN and Inf from the
// environment, which would pass every range check written as v < lo || v > hi.
func checkFinite(key string, val any) error {
	rv := reflect.ValueOf(val)
	f := 0.0
	switch {
	case rv.Kind() == reflect.String:
		v, err := strconv.ParseFloat(strings.TrimSpace(rv.String()), 64)
		if err != nil {
			return nil // mapstructure says what is wrong
		}
		f = v
	case rv.CanFloat():
		f = rv.Float()
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("%s: %v is not a number: write one, e.g. 0.5", key, f)
	}
	return nil
}

// checkWhole accepts a whole number in the range of an int64: a YAML integer, or digits from
// the environment. A fraction (1.5) or an exponent (1e9) is refused rather than cut.
func checkWhole(key string, val any) error {
	rv := reflect.ValueOf(val)
	switch {
	case rv.Kind() == reflect.String:
		s := strings.TrimSpace(rv.String())
		if s == "" {
			return nil
		}
		if _, err := strconv.ParseInt(s, 10, 64); err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return fmt.Errorf("%s: %s is far too large: see docs/operations.md for the range of each key", key, s)
			}
			return fmt.Errorf("%s: %q must be a whole number written in digits, e.g. 1024", key, s)
		}
	case rv.CanUint():
		if rv.Uint() > math.MaxInt64 {
			return fmt.Errorf("%s: %d is far too large: see docs/operations.md for the range of each key", key, rv.Uint())
		}
	case rv.CanFloat():
		return fmt.Errorf("%s: %s must be a whole number written in digits, e.g. 1024 (no fraction, no exponent)", key, strconv.FormatFloat(rv.Float(), 'g', -1, 64))
	}
	return nil
}

// unknownKeys lists the keys of m, at any depth, that t has no mapstructure field for.
func unknownKeys(prefix string, m map[string]any, t reflect.Type) []string {
	fields := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		if tag := t.Field(i).Tag.Get("mapstructure"); tag != "" {
			fields[tag] = t.Field(i).Type
		}
	}
	var bad []string
	for k, val := range m {
		ft, ok := fields[k]
		key := join(prefix, k)
		if !ok {
			bad = append(bad, key)
			continue
		}
		bad = append(bad, unknownIn(key, val, ft)...)
	}
	sort.Strings(bad)
	return bad
}

func unknownIn(key string, val any, t reflect.Type) []string {
	switch t.Kind() {
	case reflect.Struct:
		if sub, ok := val.(map[string]any); ok {
			return unknownKeys(key, sub, t)
		}
	case reflect.Map:
		if sub, ok := val.(map[string]any); ok && t.Elem().Kind() == reflect.Struct {
			var bad []string
			for name, v := range sub {
				bad = append(bad, unknownIn(join(key, name), v, t.Elem())...)
			}
			return bad
		}
	case reflect.Slice:
		if list, ok := val.([]any); ok && t.Elem().Kind() == reflect.Struct {
			var bad []string
			for i, v := range list {
				bad = append(bad, unknownIn(fmt.Sprintf("%s[%d]", key, i), v, t.Elem())...)
			}
			return bad
		}
	}
	return nil
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// structToMap turns a config struct into nested maps keyed by mapstructure tags.
func structToMap(v any) map[string]any {
	out := map[string]any{}
	_ = mapstructure.Decode(v, &out)
	for k, val := range out {
		rv := reflect.ValueOf(val)
		if rv.Kind() == reflect.Struct {
			out[k] = structToMap(val)
		}
	}
	return out
}

// flatten returns the scalar leaves of m under dotted keys, leaving out lists and maps of
// entries (models, cameras), which have per-entry defaults instead.
func flatten(prefix string, m map[string]any) map[string]any {
	out := map[string]any{}
	for k, val := range m {
		key := join(prefix, k)
		switch x := val.(type) {
		case map[string]any:
			for kk, vv := range flatten(key, x) {
				out[kk] = vv
			}
		default:
			rv := reflect.ValueOf(val)
			if rv.Kind() == reflect.Map || rv.Kind() == reflect.Slice {
				continue
			}
			out[key] = val
		}
	}
	return out
}

// resolve fills the defaults that depend on other values, and makes relative paths relative
// to the folder of the config file.
func (c *Config) resolve(base string) {
	if c.Agent.ID == "" {
		if h, err := os.Hostname(); err == nil {
			c.Agent.ID = sanitizeID(h)
		}
	}
	if c.MQTT.ClientID == "" && c.Agent.ID != "" {
		c.MQTT.ClientID = "cvedge-" + c.Agent.ID
	}
	if c.Sparkplug.EdgeNodeID == "" {
		c.Sparkplug.EdgeNodeID = c.Agent.ID
	}
	if c.MQTT.TopicPrefix == "" && c.Agent.ID != "" {
		c.MQTT.TopicPrefix = "cvedge/" + c.Agent.ID
	}
	for dir, name := range map[*string]string{&c.Spool.Dir: "spool", &c.Store.Dir: "models"} {
		if *dir == "" {
			*dir = stateDir(name)
		}
		*dir = relativeTo(base, *dir)
	}
	c.Store.CAFile = relativeTo(base, c.Store.CAFile)
	if c.UI.Review.Dir == "" {
		c.UI.Review.Dir = filepath.Join(c.Spool.Dir, "review")
	}
	if c.UI.Review.Dataset == "" {
		c.UI.Review.Dataset = filepath.Join(c.Spool.Dir, "dataset")
	}
	if c.Samples.Store.Dir == "" {
		c.Samples.Store.Dir = filepath.Join(c.Spool.Dir, "samples")
	}
	c.Samples.Store.Dir = relativeTo(base, c.Samples.Store.Dir)
	for _, p := range []*string{&c.UI.Review.Dir, &c.UI.Review.Dataset, &c.UI.Auth.TokenFile, &c.HTTP.TLS.CertFile, &c.HTTP.TLS.KeyFile} {
		*p = relativeTo(base, *p)
	}
	c.Commands.PublicKeyFile = relativeTo(base, c.Commands.PublicKeyFile)
	t := &c.MQTT.TLS
	for _, p := range []*string{&t.CAFile, &t.CertFile, &t.KeyFile, &c.MQTT.PasswordFile, &c.MQTT.AzureIoTHub.ConnectionStringFile} {
		*p = relativeTo(base, *p)
	}
	st := &c.Sparkplug.TLS
	for _, p := range []*string{&st.CAFile, &st.CertFile, &st.KeyFile, &c.Sparkplug.PasswordFile} {
		*p = relativeTo(base, *p)
	}
	for name, m := range c.Models {
		m.Path = relativeTo(base, m.Path)
		m.Shadow.Path = relativeTo(base, m.Shadow.Path)
		c.Models[name] = m
	}
	for i := range c.Cameras {
		c.Cameras[i].Collect.Dir = relativeTo(base, c.Cameras[i].Collect.Dir)
		// viper lowercases map keys, so model names are matched in lower case
		pl := &c.Cameras[i].Pipeline
		pl.Detector, pl.Classifier = strings.ToLower(pl.Detector), strings.ToLower(pl.Classifier)
		for tag, model := range pl.Routes {
			pl.Routes[tag] = strings.ToLower(model)
		}
		if c.Cameras[i].Type != "genicam" && isLocalPath(c.Cameras[i].Source) { // a GenICam source names a camera
			c.Cameras[i].Source = relativeTo(base, c.Cameras[i].Source)
		}
	}
}

// stateDir is the default folder of name: under the service's state directory
// ($STATE_DIRECTORY, set by systemd's StateDirectory=), else under /var/lib/cvedge.
func stateDir(name string) string {
	if sd := os.Getenv("STATE_DIRECTORY"); sd != "" {
		return filepath.Join(strings.Split(sd, ":")[0], name)
	}
	return filepath.Join("/var/lib/cvedge", name)
}

func relativeTo(base, p string) string {
	if p == "" || base == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(base, p)
}

// isLocalPath reports whether a camera source can only be a relative file or folder path:
// not a URL, a device index, an absolute path or a GStreamer pipeline.
func isLocalPath(s string) bool {
	if s == "" || filepath.IsAbs(s) || strings.Contains(s, "://") || strings.Contains(s, "!") {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return true
		}
	}
	return false
}

// sanitizeID keeps a host name usable as one MQTT topic level.
func sanitizeID(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '+' || r == '#' || r == ' ' {
			return '-'
		}
		return r
	}, s)
}

// Print writes the effective config as YAML, with secrets redacted: the MQTT password, and
// in every value what Redact masks (camera URL and pipeline credentials, a broker URL's
// password).
func (c *Config) Print(w io.Writer) error {
	cp := *c
	if cp.MQTT.Password != "" {
		cp.MQTT.Password = "<redacted>"
	}
	if cp.MQTT.AzureIoTHub.ConnectionString != "" {
		cp.MQTT.AzureIoTHub.ConnectionString = "<redacted>"
	}
	if cp.Sparkplug.Password != "" {
		cp.Sparkplug.Password = "<redacted>"
	}
	if cp.UI.Auth.Token != "" {
		cp.UI.Auth.Token = "<redacted>"
	}
	out := structToMap(cp)
	models := map[string]any{}
	for name, m := range cp.Models {
		models[name] = structToMap(m)
	}
	out["models"] = models
	cams := make([]any, len(cp.Cameras))
	for i, cam := range cp.Cameras {
		cams[i] = structToMap(cam)
	}
	out["cameras"] = cams
	users := make([]any, len(cp.UI.Auth.Users))
	for i, u := range cp.UI.Auth.Users {
		users[i] = map[string]any{"name": u.Name, "password_hash": "<redacted>"}
	}
	if ui, ok := out["ui"].(map[string]any); ok {
		if auth, ok := ui["auth"].(map[string]any); ok {
			auth["users"] = users
		}
	}
	redactValues(out)
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(out); err != nil {
		return err
	}
	return enc.Close()
}

// redactValues applies Redact to every string in v, a tree of maps and lists.
func redactValues(v any) any {
	switch x := v.(type) {
	case string:
		return Redact(x)
	case map[string]any:
		for k, val := range x {
			x[k] = redactValues(val)
		}
	case []any:
		for i, val := range x {
			x[i] = redactValues(val)
		}
	}
	return v
}

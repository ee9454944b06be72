package integrationscheck

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/cvedge/cvedge/agent/testenv"
)

// telegrafFile is the Telegraf configuration, under the repository root.
var telegrafFile = []string{"docs", "integrations", "telegraf-cvedge.conf"}

// telegrafConf is the part of a Telegraf configuration the integration uses; decoding is
// strict, so a misspelt option is an error rather than a setting Telegraf would ignore.
type telegrafConf struct {
	Inputs struct {
		MQTTConsumer []mqttConsumer `toml:"mqtt_consumer"`
	} `toml:"inputs"`
	Outputs struct {
		InfluxDBv2 []struct {
			URLs         []string `toml:"urls"`
			Token        string   `toml:"token"`
			Organization string   `toml:"organization"`
			Bucket       string   `toml:"bucket"`
		} `toml:"influxdb_v2"`
	} `toml:"outputs"`
}

type mqttConsumer struct {
	Servers           []string            `toml:"servers"`
	Topics            []string            `toml:"topics"`
	QoS               int                 `toml:"qos"`
	ClientID          string              `toml:"client_id"`
	PersistentSession bool                `toml:"persistent_session"`
	DataFormat        string              `toml:"data_format"`
	JSONv2            []jsonV2            `toml:"json_v2"`
	TagPass           map[string][]string `toml:"tagpass"`
}

type jsonV2 struct {
	MeasurementName string         `toml:"measurement_name"`
	TimestampPath   string         `toml:"timestamp_path"`
	TimestampFormat string         `toml:"timestamp_format"`
	Tags            []jsonV2Value  `toml:"tag"`
	Fields          []jsonV2Value  `toml:"field"`
	Objects         []jsonV2Object `toml:"object"`
}

type jsonV2Value struct {
	Path     string `toml:"path"`
	Rename   string `toml:"rename"`
	Type     string `toml:"type"`
	Optional bool   `toml:"optional"`
}

type jsonV2Object struct {
	Path               string `toml:"path"`
	DisablePrependKeys bool   `toml:"disable_prepend_keys"`
	Optional           bool   `toml:"optional"`
}

func loadTelegraf(t *testing.T) telegrafConf {
	t.Helper()
	raw, err := os.ReadFile(testenv.Path(telegrafFile...))
	if err != nil {
		t.Fatal(err)
	}
	var c telegrafConf
	dec := toml.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		var strict *toml.StrictMissingError
		if errors.As(err, &strict) {
			t.Fatalf("%s: options this test does not know (misspelt, or new: add them to telegrafConf): %s", path.Join(telegrafFile...), strict.String())
		}
		t.Fatalf("%s: %v", path.Join(telegrafFile...), err)
	}
	return c
}

// valueName is the name json_v2 gives a tag or field: its rename, else the path's last word.
func valueName(v jsonV2Value) string {
	if v.Rename != "" {
		return v.Rename
	}
	return v.Path[strings.LastIndex(v.Path, ".")+1:]
}

// checkValue checks what a path gives in one payload against a json_v2 type ("" for a tag):
// a scalar, and for a field a value Telegraf converts to its type.
func checkValue(v any, typ string) error {
	switch v.(type) {
	case map[string]any, []any:
		return fmt.Errorf("an object or array (json_v2 ignores it: use an object table)")
	}
	switch typ {
	case "", "string":
		return nil
	case "float":
		if _, ok := v.(float64); !ok {
			return fmt.Errorf("%v is not a number", v)
		}
	case "int", "uint":
		f, ok := v.(float64)
		if !ok || f != math.Trunc(f) || typ == "uint" && f < 0 {
			return fmt.Errorf("%v is not a whole number", v)
		}
	case "bool":
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("%v is not a bool", v)
		}
	default:
		return fmt.Errorf("type %q is not one of json_v2's: int, uint, float, string, bool", typ)
	}
	return nil
}

// checkTelegraf checks the configuration against real payloads: each mqtt_consumer
// subscribes to one documented cvedge topic and parses it with json_v2; every path of a tag,
// field, object or timestamp resolves in every payload of that topic (an optional one in
// some), to a value of the configured type; the timestamps parse with timestamp_format; a
// tagpass filters on a tag the parser makes, with values the payload has.
func checkTelegraf(c telegrafConf, variants map[string][]variant, s schemaSet, topics []docTopic) (map[string]bool, []error) {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	covered := map[string]bool{}
	clientIDs := map[string]bool{}
	for i, mc := range c.Inputs.MQTTConsumer {
		where := fmt.Sprintf("inputs.mqtt_consumer #%d (%s)", i+1, strings.Join(mc.Topics, ", "))
		if mc.DataFormat != "json_v2" || len(mc.JSONv2) == 0 {
			fail("%s: data_format %q, want json_v2 with json_v2 tables", where, mc.DataFormat)
		}
		if len(mc.Servers) == 0 || len(mc.Topics) == 0 {
			fail("%s: no servers or no topics", where)
		}
		if mc.PersistentSession && mc.ClientID == "" {
			fail("%s: a persistent session needs a client_id", where)
		}
		if mc.ClientID != "" && clientIDs[mc.ClientID] {
			fail("%s: client_id %q is used twice: the broker would disconnect one of them", where, mc.ClientID)
		}
		clientIDs[mc.ClientID] = true
		schema := ""
		for _, topic := range mc.Topics {
			sc, err := subscribedSchema(topic, topics)
			if err != nil {
				fail("%s: %v", where, err)
				continue
			}
			if schema != "" && sc != schema {
				fail("%s: its topics carry %s and %s payloads: one json_v2 parser reads one kind", where, schema, sc)
			}
			schema = sc
		}
		payloads := variants[schema]
		if schema == "" {
			continue
		}
		if len(payloads) == 0 {
			fail("%s: no test payloads for %s: add them to payloadVariants", where, schema)
			continue
		}
		covered[schema] = true
		// resolve checks a path in every payload: found in all (or, optional, in some)
		resolve := func(what, p, typ string, optional bool, object bool) {
			found := 0
			for _, v := range payloads {
				got, ok, err := jsonPath(v.doc, p)
				if err != nil {
					fail("%s: %s: %v", where, what, err)
					return
				}
				if !ok {
					if !optional {
						fail("%s: %s path %q is not in the %s payload %q: mark it optional = true, or fix the path", where, what, p, schema, v.name)
					}
					continue
				}
				found++
				if object {
					if _, isObj := got.(map[string]any); !isObj {
						fail("%s: %s path %q is not an object in %q", where, what, p, v.name)
					}
					continue
				}
				if err := checkValue(got, typ); err != nil {
					fail("%s: %s path %q in %q: %v", where, what, p, v.name, err)
				}
			}
			if found == 0 {
				fail("%s: %s path %q is in none of the %s payloads", where, what, p, schema)
			}
		}
		tagPaths := map[string]string{}
		for _, j := range mc.JSONv2 {
			if j.MeasurementName == "" {
				fail("%s: a json_v2 table without measurement_name", where)
			}
			if j.TimestampPath != "" {
				resolve("timestamp", j.TimestampPath, "string", false, false)
				for _, v := range payloads {
					ts, ok, _ := jsonPath(v.doc, j.TimestampPath)
					str, isStr := ts.(string)
					if !ok || !isStr {
						continue
					}
					if strings.HasPrefix(j.TimestampFormat, "unix") {
						fail("%s: timestamp %q is a time string, timestamp_format %q wants a number", where, j.TimestampPath, j.TimestampFormat)
					} else if _, err := time.Parse(j.TimestampFormat, str); err != nil {
						fail("%s: timestamp %q of %q does not parse with timestamp_format %q: %v", where, str, v.name, j.TimestampFormat, err)
					}
				}
			}
			names := map[string]bool{}
			for _, tg := range j.Tags {
				resolve("tag", tg.Path, "", tg.Optional, false)
				n := valueName(tg)
				if names[n] {
					fail("%s: %s: two tags or fields named %s", where, j.MeasurementName, n)
				}
				names[n] = true
				tagPaths[n] = tg.Path
			}
			for _, f := range j.Fields {
				if f.Type == "" {
					fail("%s: field %q without a type: set it, so that a whole number stays an int", where, f.Path)
				}
				resolve("field", f.Path, f.Type, f.Optional, false)
				n := valueName(f)
				if names[n] {
					fail("%s: %s: two tags or fields named %s", where, j.MeasurementName, n)
				}
				names[n] = true
			}
			for _, o := range j.Objects {
				resolve("object", o.Path, "", o.Optional, true)
			}
		}
		for tag, values := range mc.TagPass {
			p, ok := tagPaths[tag]
			if !ok {
				fail("%s: tagpass on %s, a tag its json_v2 does not make", where, tag)
				continue
			}
			node, _ := s.property(schema, strings.Split(p, "."))
			for _, v := range values {
				if enum := enumValues(node); enum != nil && !slices.Contains(enum, v) {
					fail("%s: tagpass %s = %q: the %s payload's %s is one of %s", where, tag, v, schema, p, strings.Join(enum, ", "))
				}
			}
		}
	}
	if len(c.Outputs.InfluxDBv2) == 0 {
		fail("no outputs.influxdb_v2")
	}
	for _, o := range c.Outputs.InfluxDBv2 {
		if len(o.URLs) == 0 || o.Bucket == "" || o.Organization == "" {
			fail("outputs.influxdb_v2: urls, organization and bucket must be set")
		}
		if !strings.HasPrefix(o.Token, "${") {
			fail("outputs.influxdb_v2: the token must come from the environment (${INFLUX_TOKEN}), not be written in the file")
		}
	}
	return covered, errs
}

// TestTelegrafConfig: docs/integrations/telegraf-cvedge.conf parses (strictly) as the
// Telegraf options it uses, and every GJSON path it reads resolves in real payloads of its
// topic, built from agent/payload and taken from docs/mqtt.md.
func TestTelegrafConfig(t *testing.T) {
	covered, errs := checkTelegraf(loadTelegraf(t), payloadVariants(t), loadSchemaSet(t), docTopics(t))
	for _, err := range errs {
		t.Error(err)
	}
	for _, want := range []string{"decision", "part", "counts", "prediction"} {
		if !covered[want] {
			t.Errorf("the configuration reads no %s messages", want)
		}
	}
}

// TestTelegrafCheckFindsFaults: the check reports a renamed path, an optional field read as
// always there, a type the value does not have, a timestamp format that does not parse, a
// topic cvedge does not use, and a tagpass value cvedge never sends.
func TestTelegrafCheckFindsFaults(t *testing.T) {
	variants, s, topics := payloadVariants(t), loadSchemaSet(t), docTopics(t)
	if _, errs := checkTelegraf(loadTelegraf(t), variants, s, topics); len(errs) > 0 {
		t.Fatalf("the configuration itself fails: %v", errs)
	}
	// find returns the consumer of schema's topic in a fresh copy of the configuration
	find := func(schema string) (telegrafConf, *mqttConsumer) {
		c := loadTelegraf(t)
		for i := range c.Inputs.MQTTConsumer {
			if sc, _ := subscribedSchema(c.Inputs.MQTTConsumer[i].Topics[0], topics); sc == schema {
				return c, &c.Inputs.MQTTConsumer[i]
			}
		}
		t.Fatalf("no consumer of %s", schema)
		return c, nil
	}
	value := func(mc *mqttConsumer, p string) *jsonV2Value {
		for i := range mc.JSONv2 {
			for k := range mc.JSONv2[i].Tags {
				if mc.JSONv2[i].Tags[k].Path == p {
					return &mc.JSONv2[i].Tags[k]
				}
			}
			for k := range mc.JSONv2[i].Fields {
				if mc.JSONv2[i].Fields[k].Path == p {
					return &mc.JSONv2[i].Fields[k]
				}
			}
		}
		t.Fatalf("no path %s", p)
		return nil
	}
	for _, c := range []struct {
		name string
		edit func() telegrafConf
		want string
	}{
		{"a renamed field", func() telegrafConf { c, mc := find("decision"); value(mc, "probability").Path = "confidence"; return c },
			`path "confidence" is not in the decision payload`},
		{"verdict as always there", func() telegrafConf { c, mc := find("decision"); value(mc, "verdict").Optional = false; return c },
			`path "verdict" is not in the decision payload "decision without verdicts"`},
		{"a part's tag read from its start event", func() telegrafConf { c, mc := find("part"); value(mc, "tagName").Optional = false; return c },
			`"part start"`},
		{"a string as a float", func() telegrafConf { c, mc := find("decision"); value(mc, "partId").Type = "float"; return c }, "is not a number"},
		{"a nested path", func() telegrafConf {
			c, mc := find("prediction")
			value(mc, "latencyMs.total").Path = "latency.total"
			return c
		},
			`"latency.total" is in none`},
		{"a timestamp format", func() telegrafConf {
			c, mc := find("counts")
			mc.JSONv2[0].TimestampFormat = "2006-01-02 15:04:05"
			return c
		}, "does not parse with timestamp_format"},
		{"a topic", func() telegrafConf { c, mc := find("counts"); mc.Topics[0] = "cvedge/+/cameras/+/count"; return c }, "matches none"},
		{"a tagpass value", func() telegrafConf { c, mc := find("part"); mc.TagPass["event"] = []string{"ended"}; return c }, `tagpass event = "ended"`},
		{"GJSON this check cannot read", func() telegrafConf {
			c, mc := find("prediction")
			value(mc, "predictions.#").Path = "predictions.#(probability>0.5)"
			return c
		},
			"does not read"},
	} {
		if _, errs := checkTelegraf(c.edit(), variants, s, topics); !strings.Contains(fmt.Sprint(errs), c.want) {
			t.Errorf("%s: errors %v, want one saying %q", c.name, errs, c.want)
		}
	}
}

// FuzzJSONPath: any path on a real payload gives a value, nothing, or an error; never a panic.
func FuzzJSONPath(f *testing.F) {
	for _, p := range []string{"agent", "predictions.#", "predictions.0.tagName", "latencyMs.total", "a..b", "#", "predictions.#.x", "votes.brass", "x.-1"} {
		f.Add(p)
	}
	doc := map[string]any{"agent": "line3", "predictions": []any{map[string]any{"tagName": "part"}}, "latencyMs": map[string]any{"total": 1.5}}
	f.Fuzz(func(t *testing.T, p string) {
		v, ok, err := jsonPath(doc, p)
		if err != nil && ok || !ok && v != nil {
			t.Fatalf("%q: %v %v %v", p, v, ok, err)
		}
	})
}

// TestIntegrationsDocs: docs/integrations.md links the three files, and its Telegraf table
// has a row for each measurement the configuration writes, naming each of its tags and fields.
func TestIntegrationsDocs(t *testing.T) {
	raw, err := os.ReadFile(testenv.Path("docs", "integrations.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	for _, f := range [][]string{grafanaFile, nodeREDFile, telegrafFile} {
		if link := "](" + path.Join(f[1:]...) + ")"; !strings.Contains(doc, link) {
			t.Errorf("docs/integrations.md does not link %s (%s)", path.Join(f...), link)
		}
	}
	_, section, _ := strings.Cut(doc, "\n## Telegraf and InfluxDB\n")
	section, _, _ = strings.Cut(section, "\n## ")
	rows := map[string]string{}
	for _, line := range strings.Split(section, "\n") {
		if name, ok := strings.CutPrefix(line, "| `"); ok {
			name, _, _ = strings.Cut(name, "`")
			rows[name] = line
		}
	}
	c := loadTelegraf(t)
	measurements := 0
	for _, mc := range c.Inputs.MQTTConsumer {
		for _, j := range mc.JSONv2 {
			measurements++
			row, ok := rows[j.MeasurementName]
			if !ok {
				t.Errorf("docs/integrations.md, Telegraf and InfluxDB: no row for measurement %s", j.MeasurementName)
				continue
			}
			for _, v := range append(slices.Clone(j.Tags), j.Fields...) {
				if n := valueName(v); !strings.Contains(row, "`"+n+"`") {
					t.Errorf("docs/integrations.md: the row of %s does not name %s", j.MeasurementName, n)
				}
			}
		}
	}
	if measurements < 5 {
		t.Fatalf("%d measurements: the configuration lost some", measurements)
	}
}

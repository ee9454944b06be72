package configs

import (
	"errors"
	"strings"
)

// StationSections are the sections of a config that cvedge review, the operator station
// without cameras, reads: the others (cameras, models, spool, ...) may be left out.
var StationSections = []string{"agent", "mqtt", "http", "ui"}

// LoadStation reads a config file for cvedge review as Load does (defaults, CVEDGE_*
// environment, unknown keys refused, paths relative to the file), with ui.enabled set,
// and validates only StationSections: a file without cameras or models will do.
func LoadStation(path string) (*Config, error) {
	return load(path, func(c *Config) error {
		c.UI.Enabled = true
		var keep []error
		for _, p := range ProblemsUnder(c.Validate(), "") {
			for _, s := range StationSections {
				if p.Key == s || strings.HasPrefix(p.Key, s+".") {
					keep = append(keep, p)
					break
				}
			}
		}
		return errors.Join(keep...)
	})
}

package models

import (
	"archive/zip"
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"
)

// maxModelBytes bounds what is read from an export; Custom Vision models are far smaller.
const maxModelBytes = 1 << 30

// maxSideFileBytes bounds labels, manifest and metadata files.
const maxSideFileBytes = 4 << 20

// Manifest is cvexport.manifest, the JSON file of a Custom Vision export ZIP.
type Manifest struct {
	DomainType            string  `json:"DomainType"`
	Platform              string  `json:"Platform"`
	Flavor                *string `json:"Flavor"`
	ExporterVersion       string  `json:"ExporterVersion"`
	ExportedDate          string  `json:"ExportedDate"`
	IterationID           string  `json:"IterationId"`
	ModelFileName         string  `json:"ModelFileName"`
	LabelFileName         string  `json:"LabelFileName"`
	MetadataPropsFileName string  `json:"MetadataPropsFileName"`
	ModelFileSHA1         string  `json:"ModelFileSHA1"`
	SchemaVersion         string  `json:"SchemaVersion"`
}

// Export is a Custom Vision export read into memory: model bytes and the files beside it.
type Export struct {
	// Source is the path the export was read from.
	Source string
	// ModelFile names the model inside the export (for messages).
	ModelFile string
	Model     []byte
	Labels    []string
	// Manifest is nil when the export has no cvexport.manifest (a bare .onnx).
	Manifest *Manifest
	// Properties is metadata_properties.json, kept for information only: it is known to
	// state Rgb8 / Normalized_0_1 for models that want BGR 0-255, so pixels never follow it.
	Properties map[string]string
	// SHA256 is the hex SHA-256 of the model bytes.
	SHA256 string
	// labelsErr says why Labels is missing or unusable. It is reported after the graph has
	// been checked, so a model that cannot run at all says so first.
	labelsErr error
}

// LabelsErr says why labels.txt is missing or unusable, or nil.
func (e *Export) LabelsErr() error { return e.labelsErr }

// ReadExport reads an export ZIP as downloaded, its unzipped folder, or a bare .onnx with
// labels.txt beside it. It checks the manifest's SHA-1, not the graph; a missing or bad
// labels.txt is kept in LabelsErr, for Describe to report after the graph.
func ReadExport(p string) (*Export, error) {
	e, err := readExportAt(p)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", p, err)
	}
	return e, nil
}

func readExportAt(p string) (*Export, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("%w (give the export ZIP, its folder, or a .onnx with labels.txt beside it)", err)
	}
	var fsys files
	modelHint := ""
	switch {
	case st.IsDir():
		fsys = dirFiles(p)
	case isZip(p):
		z, err := zip.OpenReader(p)
		if err != nil {
			return nil, fmt.Errorf("not a readable ZIP: %w (download the export again)", err)
		}
		defer z.Close()
		if fsys, err = zipFiles(&z.Reader); err != nil {
			return nil, err
		}
	default:
		fsys = dirFiles(filepath.Dir(p))
		modelHint = filepath.Base(p)
	}
	e, err := readExport(fsys, modelHint)
	if err != nil {
		return nil, err
	}
	e.Source = p
	return e, nil
}

// files is the little a reader needs from a folder or a ZIP.
type files interface {
	read(name string, limit int64) ([]byte, error) // fs.ErrNotExist when absent
	list() []string
}

func readExport(fsys files, modelHint string) (*Export, error) {
	e := &Export{}
	if raw, err := fsys.read("cvexport.manifest", maxSideFileBytes); err == nil {
		m, err := ParseManifest(raw)
		if err != nil {
			return nil, err
		}
		e.Manifest = m
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	e.ModelFile = modelHint
	if e.ModelFile == "" && e.Manifest != nil && e.Manifest.ModelFileName != "" {
		e.ModelFile = e.Manifest.ModelFileName
	}
	if e.ModelFile == "" {
		var onnx []string
		for _, n := range fsys.list() {
			if strings.EqualFold(path.Ext(n), ".onnx") {
				onnx = append(onnx, n)
			}
		}
		switch len(onnx) {
		case 0:
			return nil, errors.New("no .onnx model found (export the iteration from the Custom Vision portal as ONNX)")
		case 1:
			e.ModelFile = onnx[0]
		default:
			return nil, fmt.Errorf("several .onnx files (%s) and no cvexport.manifest to choose: point at the .onnx file itself", strings.Join(onnx, ", "))
		}
	}
	raw, err := fsys.read(e.ModelFile, maxModelBytes)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", e.ModelFile, err)
	}
	e.Model = raw
	sum := sha256.Sum256(raw)
	e.SHA256 = hex.EncodeToString(sum[:])
	if e.Manifest != nil && e.Manifest.ModelFileSHA1 != "" {
		got := sha1.Sum(raw)
		if !strings.EqualFold(hex.EncodeToString(got[:]), strings.TrimSpace(e.Manifest.ModelFileSHA1)) {
			return nil, fmt.Errorf("%s has SHA-1 %x but cvexport.manifest says %s: the file is corrupt or was replaced; download the export again", e.ModelFile, got, e.Manifest.ModelFileSHA1)
		}
	}
	labelFile := "labels.txt"
	if e.Manifest != nil && e.Manifest.LabelFileName != "" {
		labelFile = e.Manifest.LabelFileName
	}
	rawLabels, err := fsys.read(labelFile, maxSideFileBytes)
	switch {
	case errors.Is(err, os.ErrNotExist):
		e.labelsErr = fmt.Errorf("no %s beside %s: copy the labels.txt of the same export next to the model", labelFile, e.ModelFile)
	case err != nil:
		e.labelsErr = fmt.Errorf("reading %s: %w", labelFile, err)
	default:
		if e.Labels, err = ParseLabels(rawLabels); err != nil {
			e.labelsErr = fmt.Errorf("%s: %w", labelFile, err)
		}
	}
	propsFile := "metadata_properties.json"
	if e.Manifest != nil && e.Manifest.MetadataPropsFileName != "" {
		propsFile = e.Manifest.MetadataPropsFileName
	}
	if rawProps, err := fsys.read(propsFile, maxSideFileBytes); err == nil {
		// information only: a bad file is not a reason to refuse the model
		e.Properties, _ = ParseProperties(rawProps)
	}
	return e, nil
}

// ParseManifest decodes cvexport.manifest.
func ParseManifest(raw []byte) (*Manifest, error) {
	var m Manifest
	raw = bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf"))
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("cvexport.manifest is not valid JSON: %v (download the export again)", err)
	}
	for _, name := range []string{m.ModelFileName, m.LabelFileName, m.MetadataPropsFileName} {
		if name != "" && (strings.Contains(name, "..") || strings.ContainsAny(name, `/\`)) {
			return nil, fmt.Errorf("cvexport.manifest names file %q outside the export; fix the manifest", name)
		}
	}
	if m.Platform != "" && !strings.EqualFold(m.Platform, "ONNX") {
		return nil, fmt.Errorf("cvexport.manifest says platform %q: cvedge runs ONNX exports; export the iteration as ONNX", m.Platform)
	}
	return &m, nil
}

// ParseLabels reads labels.txt: one tag a line, in the model's output order.
func ParseLabels(raw []byte) ([]string, error) {
	raw = bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf"))
	if !utf8.Valid(raw) {
		return nil, errors.New("not UTF-8 text: use the labels.txt of the export")
	}
	lines := strings.Split(strings.ReplaceAll(string(raw), "\r\n", "\n"), "\n")
	for len(lines) > 0 && strings.TrimSpace(lines[len(lines)-1]) == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) == 0 {
		return nil, errors.New("empty: it must list the model's tags, one a line")
	}
	seen := map[string]int{}
	for i, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" {
			return nil, fmt.Errorf("line %d is empty: every line is one tag, in output order, so an empty line would shift them", i+1)
		}
		if j, dup := seen[l]; dup {
			return nil, fmt.Errorf("tag %q is on lines %d and %d: tags must be unique", l, j+1, i+1)
		}
		seen[l] = i
		lines[i] = l
	}
	return lines, nil
}

// ParseProperties reads metadata_properties.json (a flat JSON object of strings).
func ParseProperties(raw []byte) (map[string]string, error) {
	var m map[string]any
	if err := json.Unmarshal(bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf")), &m); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if s, ok := v.(string); ok {
			out[k] = s
		} else {
			out[k] = fmt.Sprint(v)
		}
	}
	return out, nil
}

func isZip(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	var magic [4]byte
	_, err = io.ReadFull(f, magic[:])
	return err == nil && string(magic[:]) == "PK\x03\x04"
}

type dirFiles string

func (d dirFiles) read(name string, limit int64) ([]byte, error) {
	f, err := os.Open(filepath.Join(string(d), name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readLimited(f, name, limit)
}

func (d dirFiles) list() []string {
	entries, _ := os.ReadDir(string(d))
	var out []string
	for _, e := range entries {
		if !e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

// zipEntries maps the base names of an export ZIP's files to their entries. An export has
// its files at the top; a ZIP made again from the unzipped folder has them one folder down.
type zipEntries map[string]*zip.File

func zipFiles(z *zip.Reader) (zipEntries, error) {
	out := zipEntries{}
	for _, f := range z.File {
		if f.FileInfo().IsDir() {
			continue
		}
		name := strings.TrimPrefix(path.Clean("/"+f.Name), "/")
		if strings.Count(name, "/") > 1 {
			continue // sample code folders (python/, CSharp/)
		}
		base := path.Base(name)
		if prev, ok := out[base]; ok && strings.Count(prev.Name, "/") <= strings.Count(f.Name, "/") {
			continue
		}
		out[base] = f
	}
	if len(out) == 0 {
		return nil, errors.New("the ZIP is empty")
	}
	return out, nil
}

func (z zipEntries) read(name string, limit int64) ([]byte, error) {
	f, ok := z[path.Base(name)]
	if !ok {
		return nil, fmt.Errorf("%s: %w", name, os.ErrNotExist)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("%s in the ZIP: %w (download the export again)", name, err)
	}
	defer rc.Close()
	return readLimited(rc, name, limit)
}

func (z zipEntries) list() []string {
	out := make([]string, 0, len(z))
	for n := range z {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func readLimited(r io.Reader, name string, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d MiB: not a Custom Vision export file", name, limit>>20)
	}
	return data, nil
}

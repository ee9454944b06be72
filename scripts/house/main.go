// Command house measures the shape of the code: lines per package, the longest functions,
// the largest files, the imports between the project's packages and, inside each package,
// the pairs of files that use each other (arrows that run both ways). Run it from the
// repository root: go run ./scripts/house. Test files are left out.
package main

import (
	"bufio"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

const module = "github.com/cvedge/cvedge/"

type fn struct {
	name  string
	lines int
}

// house is what the walk found: by package folder, its files and lines; the functions; the
// imports between the project's packages.
type house struct {
	fset      *token.FileSet
	pkgLines  map[string]int
	fileLines map[string]int
	byPkg     map[string][]*ast.File
	names     map[*ast.File]string
	fns       []fn
	imports   map[[2]string]bool
}

func main() {
	h := &house{fset: token.NewFileSet(), pkgLines: map[string]int{}, fileLines: map[string]int{}, byPkg: map[string][]*ast.File{},
		names: map[*ast.File]string{}, imports: map[[2]string]bool{}}
	if err := filepath.WalkDir(".", h.visit); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	h.printPackages()
	h.printFunctions()
	h.printArrows()
}

// visit reads one non-test Go file of the project.
func (h *house) visit(path string, d os.DirEntry, err error) error {
	if err != nil {
		return err
	}
	if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != "." || d.Name() == "lib" || d.Name() == "testdata") {
		return filepath.SkipDir
	}
	if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || strings.HasSuffix(path, ".pb.go") {
		return nil
	}
	f, err := parser.ParseFile(h.fset, path, nil, parser.SkipObjectResolution)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	n := countLines(path)
	h.pkgLines[dir] += n
	h.fileLines[path] = n
	h.byPkg[dir] = append(h.byPkg[dir], f)
	h.names[f] = path
	for _, im := range f.Imports {
		p := strings.Trim(im.Path.Value, `"`)
		if strings.HasPrefix(p, module) {
			h.imports[[2]string{dir, strings.TrimPrefix(p, module)}] = true
		}
	}
	for _, decl := range f.Decls {
		if fd, ok := decl.(*ast.FuncDecl); ok && fd.Body != nil {
			name := fd.Name.Name
			if fd.Recv != nil && len(fd.Recv.List) > 0 {
				name = recvName(fd.Recv.List[0].Type) + "." + name
			}
			l := h.fset.Position(fd.End()).Line - h.fset.Position(fd.Pos()).Line + 1
			h.fns = append(h.fns, fn{path + ": " + name, l})
		}
	}
	return nil
}

func (h *house) printPackages() {
	total := 0
	for _, n := range h.pkgLines {
		total += n
	}
	fmt.Printf("non-test Go lines: %d in %d packages\n\n| package | lines | files | largest file |\n|---|---|---|---|\n", total, len(h.pkgLines))
	for _, p := range sortedKeys(h.pkgLines) {
		largest, most := "", 0
		for _, f := range h.byPkg[p] {
			if n := h.fileLines[h.names[f]]; n > most {
				largest, most = filepath.Base(h.names[f]), n
			}
		}
		fmt.Printf("| %s | %d | %d | %s (%d) |\n", p, h.pkgLines[p], len(h.byPkg[p]), largest, most)
	}
}

func (h *house) printFunctions() {
	fns := h.fns
	sort.Slice(fns, func(i, j int) bool { return fns[i].lines > fns[j].lines })
	over := 0
	for _, f := range fns {
		if f.lines > 80 {
			over++
		}
	}
	fmt.Printf("\nfunctions: %d, of them over 80 lines: %d; the longest:\n", len(fns), over)
	for _, f := range fns[:min(12, len(fns))] {
		fmt.Printf("  %4d  %s\n", f.lines, f.name)
	}
}

func (h *house) printArrows() {
	fmt.Printf("\nimports between the project's packages: %d\n", len(h.imports))
	both := 0
	for _, p := range sortedKeys(h.pkgLines) {
		pairs := mutualFiles(h.byPkg[p], h.names)
		both += len(pairs)
		if len(pairs) > 0 {
			fmt.Printf("  %s: %d pairs of files use each other: %s\n", p, len(pairs), strings.Join(pairs, ", "))
		}
	}
	fmt.Printf("pairs of files that use each other, all packages: %d\n", both)
}

// mutualFiles lists the pairs of files of one package where each uses a top-level name (a
// function, type, variable or constant) the other declares. Methods and fields are left
// out: a file that calls a method of a type declared elsewhere also names that type or
// gets its value from a function, which counts.
func mutualFiles(files []*ast.File, names map[*ast.File]string) []string {
	declared := map[string]*ast.File{}
	for _, f := range files {
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil {
					declared[d.Name.Name] = f
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						declared[s.Name.Name] = f
					case *ast.ValueSpec:
						for _, n := range s.Names {
							declared[n.Name] = f
						}
					}
				}
			}
		}
	}
	uses := map[[2]*ast.File]bool{}
	for _, f := range files {
		for _, d := range f.Decls { // not the package clause: "package main" is no use of func main
			ast.Inspect(d, func(n ast.Node) bool {
				if sel, ok := n.(*ast.SelectorExpr); ok { // x.Name: Name is a field or method
					ast.Inspect(sel.X, func(m ast.Node) bool {
						if id, ok := m.(*ast.Ident); ok {
							if g, ok := declared[id.Name]; ok && g != f {
								uses[[2]*ast.File{f, g}] = true
							}
						}
						return true
					})
					return false
				}
				if id, ok := n.(*ast.Ident); ok {
					if g, ok := declared[id.Name]; ok && g != f {
						uses[[2]*ast.File{f, g}] = true
					}
				}
				return true
			})
		}
	}
	var out []string
	for k := range uses {
		if names[k[0]] < names[k[1]] && uses[[2]*ast.File{k[1], k[0]}] {
			out = append(out, filepath.Base(names[k[0]])+"<->"+filepath.Base(names[k[1]]))
		}
	}
	sort.Strings(out)
	return out
}

func recvName(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.StarExpr:
		return recvName(t.X)
	case *ast.IndexExpr:
		return recvName(t.X)
	case *ast.IndexListExpr:
		return recvName(t.X)
	case *ast.Ident:
		return t.Name
	}
	return "?"
}

func countLines(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
	}
	return n
}

func sortedKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

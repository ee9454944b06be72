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

func main() {
	fset := token.NewFileSet()
	pkgLines := map[string]int{}
	fileLines := map[string]int{}
	var fns []fn
	imports := map[[2]string]bool{}
	byPkg := map[string][]*ast.File{}
	names := map[*ast.File]string{}
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != "." || d.Name() == "lib" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || strings.HasSuffix(path, ".pb.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		dir := filepath.Dir(path)
		n := countLines(path)
		pkgLines[dir] += n
		fileLines[path] = n
		byPkg[dir] = append(byPkg[dir], f)
		names[f] = path
		for _, im := range f.Imports {
			p := strings.Trim(im.Path.Value, `"`)
			if strings.HasPrefix(p, module) {
				imports[[2]string{dir, strings.TrimPrefix(p, module)}] = true
			}
		}
		for _, decl := range f.Decls {
			if fd, ok := decl.(*ast.FuncDecl); ok && fd.Body != nil {
				name := fd.Name.Name
				if fd.Recv != nil && len(fd.Recv.List) > 0 {
					name = recvName(fd.Recv.List[0].Type) + "." + name
				}
				l := fset.Position(fd.End()).Line - fset.Position(fd.Pos()).Line + 1
				fns = append(fns, fn{path + ": " + name, l})
			}
		}
		return nil
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	total := 0
	for _, n := range pkgLines {
		total += n
	}
	fmt.Printf("non-test Go lines: %d in %d packages\n\n| package | lines | files | largest file |\n|---|---|---|---|\n", total, len(pkgLines))
	for _, p := range sortedKeys(pkgLines) {
		largest, most := "", 0
		for _, f := range byPkg[p] {
			if n := fileLines[names[f]]; n > most {
				largest, most = filepath.Base(names[f]), n
			}
		}
		fmt.Printf("| %s | %d | %d | %s (%d) |\n", p, pkgLines[p], len(byPkg[p]), largest, most)
	}
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
	fmt.Printf("\nimports between the project's packages: %d\n", len(imports))
	both := 0
	for _, p := range sortedKeys(pkgLines) {
		pairs := mutualFiles(byPkg[p], names)
		both += len(pairs)
		if len(pairs) > 0 {
			fmt.Printf("  %s: %d pairs of files use each other: %s\n", p, len(pairs), strings.Join(pairs, ", "))
		}
	}
	fmt.Printf("pairs of files that use each other, all packages: %d\n", both)
}

// mutualFiles lists the pairs of files of one package where each uses a name the other
// declares (top-level names and method names).
func mutualFiles(files []*ast.File, names map[*ast.File]string) []string {
	declared := map[string]*ast.File{}
	for _, f := range files {
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				declared[d.Name.Name] = f
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
		ast.Inspect(f, func(n ast.Node) bool {
			if id, ok := n.(*ast.Ident); ok {
				if g, ok := declared[id.Name]; ok && g != f {
					uses[[2]*ast.File{f, g}] = true
				}
			}
			return true
		})
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

package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/cvedge/cvedge/agent/tools/augment"
	"github.com/cvedge/cvedge/agent/tools/collect"
	"github.com/cvedge/cvedge/configs"
)

// augmentCmd is cvedge collect augment: augmented copies of a classification data set.
func augmentCmd(stdout, stderr io.Writer) *cobra.Command {
	var (
		o      augment.Options
		ops    string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "augment --in DIR --out DIR [--copies N] [--seed N] [--ops LIST]",
		Short: "Write augmented copies of a classification data set, to stretch a first data set before upload",
		Long: "Read a classification data set (a folder per tag, as cvedge collect writes it and Custom Vision uploads take it)\n" +
			"and write into --out the same folders with each image and --copies augmented copies of it, named\n" +
			"<image>.aug-1.jpg, <image>.aug-2.jpg, ..., so --out can be uploaded as it is. The transforms and their ranges\n" +
			"are --ops (its default is below; docs/improvement.md lists them); each copy's parameters are drawn from\n" +
			"--seed, so a run is reproducible. An image with a mask beside it (<image>.mask.png,\n" +
			"white = the part) is put on a photo of --backgrounds for a share of its copies. augment.jsonl in --out lists\n" +
			"every file written (source, its SHA-256, the ops with their drawn parameters, the seed); a second run skips\n" +
			"what it lists, so an interrupted run resumes. --out must be a new folder, outside --in and outside any data\n" +
			"set, and cvedge eval refuses a data set with augmented copies: they are for training, never for evaluation.\n" +
			"Prints what it wrote, or with --json the same as one JSON object (docs/cli.md). An image that cannot be\n" +
			"augmented is named, the others are done, and the exit status is 1.",
		Example: "  # 15 images per tag become 75: each image and 4 copies\n" +
			"  cvedge collect augment --in ./first-set --out ./first-set-augmented --copies 4\n\n" +
			"  # stronger rotation, both flips, parts on other backgrounds\n" +
			"  cvedge collect augment --in ./first-set --out ./aug --ops rotate=30,flip=hv,brightness=0.3,background=0.5 --backgrounds ./backgrounds",
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if o.In == "" || o.Out == "" {
				return usageErrorf("give --in (the data set) and --out (a new folder for the augmented set)")
			}
			if o.Copies < 1 {
				return usageErrorf("--copies %d: give the number of augmented copies of each image, 1 or more", o.Copies)
			}
			if o.MaxImages < 0 {
				return usageErrorf("--max-images %d: give 0 (every image) or more", o.MaxImages)
			}
			var err error
			if o.Ops, err = augment.ParseOps(ops); err != nil {
				return usageError{err}
			}
			o.Log = newLogger(configs.Agent{LogLevel: "info", LogFormat: "auto"}, stderr).With("component", "augment")
			prog := newProgress(stderr)
			o.Progress = func(n, total int) { prog.update("augmenting", n, total) }
			ctx, stop := collect.UntilSignal(context.Background())
			defer stop()
			sum, err := augment.Run(ctx, o)
			prog.done()
			if sum.Sources+len(sum.Failed) == 0 {
				return err // refused before any image
			}
			if asJSON {
				if jerr := writeJSON(stdout, sum); jerr != nil {
					return jerr
				}
			} else {
				fmt.Fprintf(stdout, "%s: %d images of %d tags, %d files written, %d already there; %d images in the augmented set\n",
					sum.Out, sum.Sources, sum.Tags, sum.Written, sum.Skipped, sum.Images)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.In, "in", "", "the data set: a folder per tag with its images (read only)")
	f.StringVar(&o.Out, "out", "", "the augmented set's folder: new, or one this command wrote (resumed)")
	f.IntVar(&o.Copies, "copies", 4, "augmented copies of each image")
	f.Int64Var(&o.Seed, "seed", 1, "seed of the drawn parameters: the same seed gives the same copies")
	f.StringVar(&ops, "ops", augment.DefaultOps, "the transforms and their ranges, NAME=VALUE,... (none: no transform)")
	f.IntVar(&o.MaxImages, "max-images", 0, "take at most this many images of each tag folder, the first by name (0: all)")
	f.StringVar(&o.Backgrounds, "backgrounds", "", "a folder of background photos, for the images that have a mask (<image>.mask.png)")
	f.BoolVar(&asJSON, "json", false, "print what was written as JSON (docs/cli.md)")
	return cmd
}

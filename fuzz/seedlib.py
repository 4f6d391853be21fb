"""seedlib.py: what the seed generators of the fuzz targets share
(corpora/<target>/gen_seeds.py): a table of named, documented seeds, filled with the
@seeds(name, doc) decorator, and the writer of a seed folder with its README.md."""
import os


class Seeds:
    def __init__(self):
        self.table = {}

    def __call__(self, name, doc):
        def reg(fn):
            self.table[name] = (doc, fn)
            return fn
        return reg

    def write(self, folder, header, make):
        """Writes every seed (make(fn) gives its bytes) and README.md: the header lines,
        then one line per seed with its documentation."""
        os.makedirs(folder, exist_ok=True)
        lines = list(header)
        for name, (doc, fn) in sorted(self.table.items()):
            with open(os.path.join(folder, name), "wb") as f:
                f.write(make(fn))
            lines.append("- `%s`: %s" % (name, doc))
        with open(os.path.join(folder, "README.md"), "w") as f:
            f.write("\n".join(lines) + "\n")


def here_seed_dir(script):
    """The seed/ folder beside a generator."""
    return os.path.join(os.path.dirname(os.path.abspath(script)), "seed")

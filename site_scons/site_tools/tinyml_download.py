"""SCons tool: `download`, the tutorial's Stanford Cars + COCO val2017 archives as class folders.

Always built when asked for; the download itself is resumable and skips archives already complete.
"""
from tinyml_glue import params_node, stage_action


def _download(target, source, p):
    from codegen.stages import download

    counts = download.tutorial_dataset(p["out_dir"], cache_dir=p["cache_dir"], limit_per_class=p["limit"],
                                       sources={"target": (p["cars_url"], None), "random": (p["coco_url"], None)},
                                       show_progress=True)
    print(", ".join(f"{cls}: {n} images" for cls, n in sorted(counts.items())) + f" in {p['out_dir']}"
          f" -> now run: scons DATA={p['out_dir']}")


def TinyDownloadTutorial(env, alias, out_dir, cache_dir, *, limit=None, cars_url=None, coco_url=None):
    from codegen.stages import download

    comstr_var, default, action = stage_action(_download, "TINY_DOWNLOADCOMSTR",
                                               "Downloading the tutorial dataset -> " + out_dir)
    env.SetDefault(**{comstr_var: default})
    node = env.Alias(alias, [params_node(env, out_dir=out_dir, cache_dir=cache_dir, limit=limit,
                                         cars_url=cars_url or download.CARS_URL,
                                         coco_url=coco_url or download.COCO_URL)], action)
    env.AlwaysBuild(node)
    # Partial and complete archives (multi-GB, resumable): only `scons -c download` removes them; the images in
    # out_dir are the user's data (DATA=) and stay.
    env.Clean(node, env.Dir(cache_dir))
    return node


def generate(env):
    env.AddMethod(TinyDownloadTutorial)


def exists(env):
    return True

"""One executor per KFP component: `loopline.executors.<component>.run` does the step's work.

Each component body (`components/<name>/component.py`) calls its executor; an executor takes
plain values, paths, and artifact objects with `.path`, `.uri` and `.metadata` (KFP's, or any
object with those attributes), so a step runs and is tested without KFP.
"""

#!/usr/bin/env python3
"""check_includes.py catches upward includes however they are written (a copy of the tree is edited).
Run by ctest (layout.check_includes_catches_upward_includes)."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

class CheckIncludesGaps(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp()
        for d in ("proxy", "routing", "conf", "metrics", "tests/layout"):
            shutil.copytree(os.path.join(REPO, d), os.path.join(self.root, d))

    def tearDown(self):
        shutil.rmtree(self.root)

    def check(self, path, text):
        full = os.path.join(self.root, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "a") as f:
            f.write(text)
        return subprocess.run([sys.executable, os.path.join(self.root, "tests/layout/check_includes.py")],
                              capture_output=True, text=True).returncode

    def test_angle_bracket_include_upward(self):   # backend (5) -> admin (8)
        self.assertEqual(self.check("proxy/backend/fence.cc", '#include <proxy/admin/info.h>\n'), 1)

    def test_relative_include_upward(self):
        self.assertEqual(self.check("proxy/backend/fence.cc", '#include "../admin/info.h"\n'), 1)

    def test_dotdot_inside_path(self):
        self.assertEqual(self.check("proxy/backend/fence.cc", '#include "proxy/backend/../reconfig/reloader.h"\n'), 1)

    def test_downward_include_passes(self):  # admin (8) -> backend (5)
        self.assertEqual(self.check("proxy/admin/info.cc", '#include "proxy/backend/fence.h"\n'), 0)

    def test_new_folder_is_in_no_room(self):
        self.assertEqual(self.check("proxy/tls/tls.h", '#include "proxy/admin/info.h"\n'), 1)

if __name__ == "__main__":
    unittest.main()

"""The staff UI's addresses (NiceGUI is mounted at `/ui` on the controller)."""

MOUNT = "/ui"
HOME = "/ui/"
LOGIN = "/ui/dang-nhap"
ACCOUNT = "/ui/tai-khoan"
RECEIVERS = "/ui/cum-loa"
MAP = "/ui/ban-do"
LIBRARY = "/ui/thu-vien"
COMPOSE = "/ui/soan-tin"
SCHEDULE = "/ui/lich-phat"
APPROVAL = "/ui/duyet-tin"
MY_DRAFTS = "/ui/duyet-tin/cua-toi"
EMERGENCY = "/ui/khan-cap"
WARNINGS = "/ui/canh-bao-ghi-san"
REPORTS = "/ui/bao-cao"
AUDIT = "/ui/nhat-ky"
USERS = "/ui/quan-tri/tai-khoan"
TOKENS = "/ui/quan-tri/ma-api"


def page_path(path: str) -> str:
    """The path as NiceGUI knows it, below its mount point: `/ui/cum-loa` → `/cum-loa`. Pages are registered
    with it, and `ui.link` / `ui.navigate.to` take it (NiceGUI puts the mount point in front of an address
    that starts with `/`); plain HTML (`href`, a form's `action`) and redirects take the full path."""
    return path[len(MOUNT):] or "/"

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
EMERGENCY = "/ui/khan-cap"
REPORTS = "/ui/bao-cao"
AUDIT = "/ui/nhat-ky"
USERS = "/ui/quan-tri/tai-khoan"
TOKENS = "/ui/quan-tri/ma-api"


def page_path(path: str) -> str:
    """The path as NiceGUI registers it (below its mount point): `/ui/cum-loa` → `/cum-loa`."""
    return path[len(MOUNT):] or "/"

// Keyboard shortcuts, handed to the view on screen (see the help overlay, "?").
export function shortcuts(ctx, currentView) {
  document.addEventListener("keydown", (e) => {
    const view = currentView();
    if (e.key === "/" && !editing(e.target)) {
      e.preventDefault();
      document.getElementById("search-box")?.focus();
    } else if (view && view.key && !e.ctrlKey && !e.metaKey && !e.altKey) {
      view.key(e, editing(e.target));
    }
  });
}

export function editing(target) {
  return target instanceof HTMLElement && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
}

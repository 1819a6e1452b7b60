// The dashboard's only script: expanding the span tree and the labelling queue's keys.
// Every page works without it.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("[data-tree]")) {
    button.addEventListener("click", () => {
      const how = button.dataset.tree;
      for (const d of document.querySelectorAll("#tree details")) {
        if (how === "open") d.open = true;
        else if (how === "close") d.open = false;
        else d.open = d.querySelector(".o-failure, .o-blocked") !== null;
      }
    });
  }
  const queue = document.getElementById("queue");
  if (!queue) return;
  const items = () => Array.from(queue.querySelectorAll(".item"));
  const current = () => queue.querySelector(".item.current") || items()[0];
  const move = (step) => {
    const all = items();
    const at = all.indexOf(current());
    const next = all[Math.min(all.length - 1, Math.max(0, at + step))];
    if (!next) return;
    all.forEach((i) => i.classList.remove("current"));
    next.classList.add("current");
    next.scrollIntoView({ block: "nearest" });
  };
  for (const item of items()) {
    item.addEventListener("click", () => {
      items().forEach((i) => i.classList.remove("current"));
      item.classList.add("current");
    });
  }
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target instanceof HTMLInputElement || event.target instanceof HTMLTextAreaElement) return;
    const item = current();
    if (!item) return;
    if (event.key === "j") move(1);
    else if (event.key === "k") move(-1);
    else if (event.key === "o") item.querySelector("a").click();
    else {
      const button = item.querySelector(`button[data-key="${event.key}"]`);
      if (!button) return;
      button.click();
    }
    event.preventDefault();
  });
});

// What views share: the order of the last conversation list shown (for j/k in a conversation).
export const recent = { ids: [], view: "mine" };

package foldermap

// specialUses in the order they are matched: a folder taken by one use is not matched
// again by a later one.
var specialUses = []string{`\Sent`, `\Drafts`, `\Trash`, `\Junk`, `\Archive`, `\All`, `\Flagged`, `\Important`}

func isViewUse(use string) bool {
	return use == `\All` || use == `\Flagged` || use == `\Important`
}

// wellKnown holds, per special use, the lower-cased names that servers and clients give
// such folders when the server does not mark them (read-only). Views are recognised by
// name only under a Gmail root.
var wellKnown = map[string]map[string]bool{
	`\Sent`: set(
		"sent", "sent items", "sent messages", "sent mail", "sent-mail", "sent e-mails",
		"envoyés", "envoyes", "messages envoyés", "éléments envoyés", "elements envoyes",
		"gesendet", "gesendete objekte", "gesendete elemente", "gesendete nachrichten",
		"wysłane", "elementy wysłane", "wiadomości wysłane",
		"enviados", "elementos enviados", "correo enviado", "itens enviados", "enviadas", "mensagens enviadas",
		"inviati", "posta inviata", "elementi inviati", "messaggi inviati",
		"verzonden", "verzonden items", "verzonden berichten",
		"odeslané", "odeslaná pošta", "skickat", "skickade objekt", "skickade",
		"sendt", "sendte elementer", "sendt post", "lähetetyt", "lähetetyt kohteet",
		"elküldött elemek", "elküldött", "trimise", "elemente trimise", "отправленные",
		"gönderilmiş öğeler", "gönderilenler", "απεσταλμένα", "已发送", "已傳送", "寄件備份",
		"送信済み", "送信済みアイテム", "보낸편지함",
	),
	`\Drafts`: set(
		"drafts", "draft", "brouillons", "entwürfe", "kopie robocze", "borradores", "rascunhos",
		"bozze", "concepten", "koncepty", "utkast", "kladder", "kladde", "luonnokset",
		"piszkozatok", "ciorne", "черновики", "taslaklar", "πρόχειρα", "草稿", "草稿箱", "下書き",
		"임시보관함",
	),
	`\Trash`: set(
		"trash", "deleted items", "deleted messages", "deleted", "bin",
		"corbeille", "éléments supprimés", "elements supprimes",
		"papierkorb", "gelöschte objekte", "gelöschte elemente",
		"kosz", "elementy usunięte", "papelera", "elementos eliminados", "lixeira", "lixo",
		"itens excluídos", "cestino", "posta eliminata", "elementi eliminati",
		"prullenbak", "verwijderde items", "koš", "odstraněná pošta",
		"papperskorgen", "borttagna objekt", "papirkurv", "slettede elementer", "roskakori",
		"poistetut", "törölt elemek", "kuka", "coș de gunoi", "корзина", "удаленные",
		"çöp kutusu", "silinmiş öğeler", "κάδος απορριμμάτων", "已删除", "已刪除", "垃圾桶",
		"ごみ箱", "削除済みアイテム", "휴지통",
	),
	`\Junk`: set(
		"junk", "spam", "junk e-mail", "junk email", "junk mail", "bulk mail",
		"courrier indésirable", "courrier indesirable", "indésirables", "indesirables", "pourriel",
		"junk-e-mail", "spamverdacht", "wiadomości-śmieci", "correo no deseado", "lixo eletrônico",
		"posta indesiderata", "ongewenste e-mail", "ongewenste e-mails", "nevyžádaná pošta",
		"skräppost", "uønsket e-post", "søppelpost", "roskaposti", "levélszemét",
		"нежелательная почта", "спам", "önemsiz e-posta", "ανεπιθύμητα", "垃圾邮件", "迷惑メール",
		"스팸편지함",
	),
	`\Archive`: set(
		"archive", "archives", "archiv", "archiwum", "archivo", "archivio", "archief", "arkiv",
		"arkisto", "arquivo", "archívum", "архив", "arşiv", "αρχειοθέτηση", "归档", "アーカイブ",
	),
	`\All`: set(
		"all mail", "alle nachrichten", "tous les messages", "wszystkie", "todos", "tutti i messaggi",
		"alle berichten", "todo el correo",
	),
	`\Flagged`: set(
		"starred", "markiert", "suivis", "oznaczone gwiazdką", "destacados", "speciali",
		"met ster", "com estrela",
	),
	`\Important`: set("important", "wichtig", "ważne", "importantes", "importanti", "belangrijk"),
}

func set(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// sideUses returns the special uses that at least one folder of a side carries: for
// those, only the attribute counts, never a name.
func sideUses(as []attrs) map[string]bool {
	uses := map[string]bool{}
	for _, a := range as {
		for _, use := range specialUses {
			if a.has(use) {
				uses[use] = true
			}
		}
	}
	return uses
}

// isCandidate reports whether the folder at path can serve use: by its attribute when
// its side marks that use somewhere, else by a well-known name at the top level or under
// INBOX (main uses) or under a Gmail root (all uses, views only with Gmail rules).
func isCandidate(path []string, a attrs, use string, marked map[string]bool, gmail bool) bool {
	if len(path) == 0 || len(path) == 1 && path[0] == inbox {
		return false
	}
	if marked[use] {
		return a.has(use)
	}
	switch {
	case len(path) == 1:
		if isViewUse(use) {
			return false
		}
	case len(path) == 2 && isGmailRoot(path[0]):
		if isViewUse(use) && !gmail {
			return false
		}
	case len(path) == 2 && path[0] == inbox:
		if isViewUse(use) {
			return false
		}
	default:
		return false
	}
	return wellKnown[use][fold(last(path))]
}

// isView reports whether a source folder is a view: \All, \Flagged, \Important.
func isView(path []string, a attrs, marked map[string]bool, gmail bool) bool {
	for _, use := range specialUses {
		if isViewUse(use) && isCandidate(path, a, use, marked, gmail) {
			return true
		}
	}
	return false
}

// gmailLike reports whether the destination is a Gmail-like server (see the package
// comment): a folder under a Gmail root carries a view attribute.
func (d *destIndex) gmailLike() bool {
	for _, f := range d.folders {
		if len(f.path) > 1 && isGmailRoot(f.path[0]) && (f.attrs.has(`\All`) || f.attrs.has(`\Flagged`) || f.attrs.has(`\Important`)) {
			return true
		}
	}
	return false
}

func isGmailRoot(comp string) bool {
	f := fold(comp)
	return f == "[gmail]" || f == "[google mail]"
}

func hasGmailRoot(paths [][]string) bool {
	for _, p := range paths {
		if len(p) > 0 && isGmailRoot(p[0]) {
			return true
		}
	}
	return false
}
